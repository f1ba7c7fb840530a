"""kill -9 of a replica in the middle of uploading a large crate (issue 14): the bucket never
holds a partial object, nobody is ever served one, and the next replica to start aborts the
unfinished multipart upload and serves the crate verified."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.request
from pathlib import Path

import pytest

from mirror.index import index_path
from mirror.store.s3 import crate_key
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, StoreProxy, TestBucket
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.slow
PART = 5 * 2**20  # the smallest part S3 takes: a 11 MiB crate goes up in three


def _env(bucket: TestBucket, endpoint: str, replica: str, **more: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "CRATE_MIRROR_S3_BUCKET": bucket.name,
        "CRATE_MIRROR_S3_ENDPOINT": endpoint,
        "CRATE_MIRROR_S3_PART_BYTES": str(PART),
        "CRATE_MIRROR_REPLICA_ID": replica,
        **more,
    }


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert resp.status == 200
        return bytes(resp.read())


def _wait_for(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_mid_upload_leaves_no_object_that_is_ever_served(
    small_registry: Registry, s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    blob = os.urandom(11 * 2**20)  # incompressible: the .crate is as large
    entry = small_registry.add_crate("bigblob", "1.0.0", {"blob.bin": blob})
    crate = small_registry.crate_bytes("bigblob", "1.0.0")
    key = crate_key(entry["cksum"])
    download = "/api/v1/crates/bigblob/1.0.0/download"
    # The second part never gets an answer: the replica is stuck mid-upload.
    store_proxy.faults.add("stall", match="partNumber=2", seconds=120)
    with FakeUpstream(small_registry).in_thread() as upstream:
        a = MirrorProcess(
            tmp_path / "a" / "cache",
            upstream=upstream.url + "/",
            env=_env(s3_bucket, store_proxy.url, "a"),
        ).start()
        try:
            _get(a.index_url + "/" + index_path("bigblob"))
            assert _get(a.url + download) == crate  # served from A's verified local copy

            def stalled() -> bool:
                return any("partNumber=2" in r.query for r in store_proxy.requests.all())

            _wait_for(stalled, "the upload to reach its second part")
        finally:
            a.kill()  # kill -9: no cleanup, no abort
        assert key not in s3_bucket.objects()  # no object, whole or partial
        assert s3_bucket.unfinished_uploads() == [key]

        b = MirrorProcess(
            tmp_path / "b" / "cache",
            upstream=upstream.url + "/",
            env=_env(s3_bucket, s3_bucket.endpoint, "b", CRATE_MIRROR_S3_STALE_UPLOAD_SECONDS="0"),
        ).start()
        try:
            assert s3_bucket.unfinished_uploads() == []  # aborted at start
            _get(b.index_url + "/" + index_path("bigblob"))
            assert _get(b.url + download) == crate  # upstream's copy, verified
            assert upstream.requests.count("/bigblob/") == 2  # A's and B's
        finally:
            b.stop()  # waits for B's upload
    stored = s3_bucket.read(key)
    assert hashlib.sha256(stored).hexdigest() == entry["cksum"] and stored == crate
