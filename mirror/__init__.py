"""crate-mirror: a verifying, caching, policy-enforcing mirror of crates.io for cargo."""

__version__ = "0.1.0"
USER_AGENT = f"crate-mirror/{__version__} (+https://github.com/crate-mirror/crate-mirror)"
