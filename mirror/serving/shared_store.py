"""The store `Settings` ask for: the local directory alone, or in front of a shared bucket.

With `s3_bucket` set, the local cache directory keeps the hot set and an `S3Store` shares
crates, index files and scan reports with the other replicas through the bucket, reached by
the object store client (mirror.upstream.s3). Credentials come from the settings
(`s3_access_key_id`, `s3_secret_access_key`) or else from the usual AWS environment variables;
they are handed to the client and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import structlog

from mirror.config import Settings
from mirror.errors import ConfigError, Problem
from mirror.store import FilesystemStore, Store
from mirror.store.s3 import S3Store
from mirror.upstream.s3 import S3Client, S3Limits, S3Location
from mirror.upstream.sigv4 import Credentials

log = structlog.get_logger("mirror.open")


def open_store(settings: Settings, env: Mapping[str, str] | None = None) -> Store:
    local = FilesystemStore(settings.cache_dir)
    if settings.s3_bucket is None:
        return local
    location = S3Location.of(
        settings.s3_bucket,
        settings.s3_endpoint,
        settings.s3_region,
        settings.s3_prefix,
        settings.s3_addressing,
    )
    limits = S3Limits(
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries=settings.s3_retries,
        part_bytes=settings.s3_part_bytes,
    )
    credentials = s3_credentials(settings, env)
    if credentials is None:
        log.warning("store.anonymous", bucket=location.describe())
    key = settings.s3_record_key
    store = S3Store(
        local,
        S3Client(location, credentials, limits),
        max_index_bytes=settings.max_index_bytes,
        record_key=key.encode() if key else None,
        stale_upload_seconds=settings.s3_stale_upload_seconds,
    )
    log.info("store.shared", bucket=location.describe(), signed_records=key is not None)
    return store


def s3_credentials(settings: Settings, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The settings' key pair if given (both halves), else AWS_ACCESS_KEY_ID and friends."""
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    if key_id and secret:
        return Credentials(key_id, secret)
    if key_id or secret:
        missing = "s3_secret_access_key" if key_id else "s3_access_key_id"
        raise ConfigError([Problem("settings", None, missing, "required with the other half")])
    return Credentials.from_env(os.environ if env is None else env)
