"""freight: a self-hosted platform for batch work."""

__version__ = "0.1.0"
