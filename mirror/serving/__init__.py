"""The serving core: every request path, with no HTTP in it (mirror.http renders it)."""
