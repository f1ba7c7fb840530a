"""python-tuf and securesystemslib names, imported in one place.

Those packages re-export these names from private modules without `__all__`, which
`mypy --strict` (no implicit re-export) reports; the ignores live here and nowhere else.
"""

from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    Key,
    Signature,
    Signer,
)
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
]
