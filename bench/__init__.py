"""Benchmarks: the mirror measured side by side with nginx and a direct upstream.

`python -m bench.run [--quick] [--out DIR]` is the one command; see bench/README.md.
"""
