"""Capability scanning of `.crate` files: safe unpacking, Rust reading, cached reports."""

from mirror.scan.archive import ArchiveLimits, CrateFiles
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
    "CrateFiles",
    "Evidence",
    "parse_capabilities",
    "scan_crate",
]
