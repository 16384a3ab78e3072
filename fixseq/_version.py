"""The package version, in one place (hatchling reads it for the wheel's metadata)."""

__version__ = "0.1.0"
