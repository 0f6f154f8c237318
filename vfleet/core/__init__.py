"""The core: typed values, the fleet engine and the one operations path. No textual, no backend library."""
