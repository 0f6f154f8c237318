"""The headless face: commands for cron, scripts and monitoring (never imports textual)."""

from vfleet.cli.main import main

__all__ = ["main"]
