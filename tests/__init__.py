"""crate-mirror's tests: unit/<package>/ (one module each), scenarios/ (behaviour through the
HTTP API), e2e/ (real cargo), bench/ (the benchmark harness), fixtures/ (and their own tests)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the checkout: policies/, mirror/, tests/
