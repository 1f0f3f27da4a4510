"""The `freight` command line (typer + rich). Thin: it parses, calls a JobClient, and prints."""
