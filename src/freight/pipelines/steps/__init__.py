"""Step implementations, one function per step type, each run inside the step's own job process."""
