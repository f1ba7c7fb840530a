"""Scanning `.crate` files: safe streaming, Rust reading for capabilities and suspicious
content (findings), cached reports."""

from mirror.scan.archive import ArchiveLimits, CrateFiles
from mirror.scan.capabilities import (
    Capability,
    CapabilityReport,
    CapabilitySet,
    Evidence,
    parse_capabilities,
    scan_crate,
)
from mirror.scan.findings import context_of
from mirror.scan.report import Context, Finding

__all__ = [
    "ArchiveLimits",
    "Capability",
    "CapabilityReport",
    "CapabilitySet",
    "Context",
    "CrateFiles",
    "Evidence",
    "Finding",
    "context_of",
    "parse_capabilities",
    "scan_crate",
]
