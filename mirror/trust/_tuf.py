"""python-tuf and securesystemslib names, imported in one place.

Those packages re-export these names from private modules without `__all__`, which
`mypy --strict` (no implicit re-export) reports; the ignores live here and nowhere else.
"""

from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    HSMSigner,
    Key,
    Signature,
    Signer,
)

# The keyid TUF tooling computes for a key (sha256 of its canonical JSON); securesystemslib
# keeps it in a private module.
from securesystemslib.signer._utils import compute_default_keyid
from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.ngclient import (  # type: ignore[attr-defined]
    FetcherInterface,
    Updater,
    UpdaterConfig,
)

__all__ = [
    "CryptoSigner",
    "DelegatedRole",
    "Delegations",
    "FetcherInterface",
    "HSMSigner",
    "Key",
    "MetaFile",
    "Metadata",
    "Root",
    "Signature",
    "Signer",
    "Snapshot",
    "SuccinctRoles",
    "TargetFile",
    "Targets",
    "Timestamp",
    "Updater",
    "UpdaterConfig",
    "compute_default_keyid",
]
