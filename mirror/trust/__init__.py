"""TUF for crate-mirror (RFC 3724): the TUF targets are the sparse index files.

upstream    UpstreamVerifier: verify index files from a signed upstream (ngclient)
repository  MirrorRepository: sign the index files this mirror serves (hashed bins)
staging     changes signed by several holders: stage, sign where they are, publish
keys        key files, public key files, signer URIs; pkcs11: keys inside a token
bundle      air-gap export/import, verified against a pinned root
settings    the `tuf:` settings section
"""

from mirror.trust.bundle import ExportReport, ImportReport, export_bundle, import_bundle
from mirror.trust.repository import MirrorRepository, RepositoryStatus, init_repository
from mirror.trust.settings import TufRepositorySettings, TufSettings, TufUpstreamSettings
from mirror.trust.upstream import UpstreamVerifier

__all__ = [
    "ExportReport",
    "ImportReport",
    "MirrorRepository",
    "RepositoryStatus",
    "TufRepositorySettings",
    "TufSettings",
    "TufUpstreamSettings",
    "UpstreamVerifier",
    "export_bundle",
    "import_bundle",
    "init_repository",
]
