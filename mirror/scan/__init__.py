"""Capability scanning of `.crate` files: safe unpacking, Rust reading, cached reports."""

from mirror.scan.archive import ArchiveLimits, CrateArchive, read_crate
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    CapabilitySet,
    Evidence,
    parse_capabilities,
    scan_crate,
)

__all__ = [
    "ArchiveLimits",
    "Capability",
    "CapabilityReport",
    "CapabilitySet",
    "CrateArchive",
    "Evidence",
    "parse_capabilities",
    "read_crate",
    "scan_crate",
]
