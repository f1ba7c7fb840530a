"""The cache: `Store` is the interface the core uses (base.py); backends implement it."""

from mirror.store.base import CachedIndex, Store
from mirror.store.filesystem import FilesystemStore

__all__ = ["CachedIndex", "FilesystemStore", "Store"]
