"""Test kits for code that builds on vfleet (driver authors first). Never imported at run time."""
