"""I/O ports for pipelines: named connections, sources that yield Arrow batches, warehouse sinks."""
