"""Which store the settings give, where its credentials come from, and that no secret is
ever shown (settings, store and client reprs, logs, configuration errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from mirror.config import Settings, load_settings
from mirror.errors import ConfigError
from mirror.serving.shared_store import open_store, s3_credentials
from mirror.store import FilesystemStore
from mirror.store.s3 import S3Store
from mirror.upstream.sigv4 import Credentials

SECRET = "s3cr3t-value-that-must-never-show"
RECORD_KEY = "record-key-that-must-never-show"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return load_settings(None, env={}, overrides={"cache_dir": tmp_path, **values})


def test_without_a_bucket_the_cache_directory_alone(tmp_path: Path) -> None:
    assert type(open_store(_settings(tmp_path))) is FilesystemStore


def test_with_a_bucket_a_shared_store_and_no_secret_anywhere(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        s3_bucket="crate-mirror",
        s3_endpoint="http://127.0.0.1:9",
        s3_access_key_id="AKIDSHOWN",
        s3_secret_access_key=SECRET,
        s3_record_key=RECORD_KEY,
    )
    with structlog.testing.capture_logs() as logs:
        store = open_store(settings, env={})
    assert isinstance(store, S3Store)
    shown = repr(settings) + str(settings) + repr(store) + repr(store.bucket) + repr(logs)
    assert SECRET not in shown and RECORD_KEY not in shown
    assert "crate-mirror" in repr(store)


def test_credentials_from_settings_win_over_the_environment(tmp_path: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "env-id", "AWS_SECRET_ACCESS_KEY": "env-secret"}
    base = {"s3_bucket": "crate-mirror"}
    assert s3_credentials(_settings(tmp_path, **base), env) == Credentials("env-id", "env-secret")
    both = _settings(tmp_path, **base, s3_access_key_id="id", s3_secret_access_key="s")
    assert s3_credentials(both, env) == Credentials("id", "s")
    assert s3_credentials(_settings(tmp_path, **base), {}) is None  # anonymous
    half = _settings(tmp_path, **base, s3_access_key_id="id")
    with pytest.raises(ConfigError, match="s3_secret_access_key") as caught:
        s3_credentials(half, env)
    assert "env-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("s3_bucket", "Bad_Bucket"),
        ("s3_bucket", "a/b"),
        ("s3_bucket", ""),
        ("s3_endpoint", "minio:9000"),
        ("s3_addressing", "dns"),
        ("s3_part_bytes", 1024),
        ("s3_retries", -1),
        ("lock_sync_interval", 0),
    ],
)
def test_bad_s3_settings_are_refused_with_their_field(
    tmp_path: Path, field: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=field):
        _settings(tmp_path, **{field: value})


def test_a_secret_in_a_bad_configuration_is_not_echoed(tmp_path: Path) -> None:
    """An error elsewhere in the same settings never prints the secret key."""
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, s3_secret_access_key=SECRET, s3_addressing="dns")
    assert SECRET not in str(caught.value)


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    """`s3_secret_access_key: 12345` in YAML is an error that does not print the number."""
    config = tmp_path / "mirror.yaml"
    config.write_text("s3_secret_access_key: 918273645546372819\ns3_record_key: [918273645]\n")
    with pytest.raises(ConfigError, match="s3_secret_access_key") as caught:
        load_settings(config, env={})
    assert "918273645" not in str(caught.value)
