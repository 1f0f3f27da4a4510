"""Object storage: logs, pipeline staging data, build cache and releases."""
