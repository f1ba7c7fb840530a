"""The object store client against a real S3 implementation (moto), through a proxy that
injects the faults a network and a store produce."""

from __future__ import annotations

import hashlib
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from mirror.errors import StoreUnavailable
from mirror.upstream.s3 import MIN_PART_BYTES, S3Client, S3Limits, S3Location, stale_uploads
from mirror.upstream.sigv4 import Credentials
from tests.fixtures.object_store import ACCESS_KEY, SECRET_KEY, StoreProxy, TestBucket


def _client(bucket: TestBucket, endpoint: str, **limits: float) -> S3Client:
    location = S3Location.of(bucket.name, endpoint, "us-east-1", "mirror", "auto")
    values: dict[str, float] = {"retries": 1, "connect_timeout": 2.0, "read_timeout": 3.0}
    values.update(limits)
    return S3Client(
        location,
        Credentials(ACCESS_KEY, SECRET_KEY),
        S3Limits(
            connect_timeout=values["connect_timeout"],
            read_timeout=values["read_timeout"],
            retries=int(values["retries"]),
            part_bytes=MIN_PART_BYTES,
        ),
    )


async def test_put_get_head_and_conditions(s3_bucket: TestBucket) -> None:
    """Objects land under the prefix; If-Match and If-None-Match decide like S3 does."""
    client = _client(s3_bucket, s3_bucket.endpoint)
    try:
        assert await client.get("a/b", 100) is None
        assert await client.head("a/b") is None
        etag = await client.put("a/b", b"one", if_none_match="*")
        assert etag
        assert s3_bucket.read("mirror/a/b") == b"one"
        assert await client.get("a/b", 100) == (b"one", etag)
        assert await client.head("a/b") == etag
        assert await client.put("a/b", b"two", if_none_match="*") is None  # exists
        assert await client.put("a/b", b"two", if_match='"not-it"') is None  # changed
        assert await client.put("a/b", b"two", if_match=etag)
        assert s3_bucket.read("mirror/a/b") == b"two"
    finally:
        await client.close()


async def test_a_large_file_goes_up_in_parts(s3_bucket: TestBucket, tmp_path: Path) -> None:
    """Multipart above the part size: the object is whole, nothing unfinished remains."""
    data = os.urandom(2 * MIN_PART_BYTES + 12345)
    path = tmp_path / "big"
    path.write_bytes(data)
    client = _client(s3_bucket, s3_bucket.endpoint)
    try:
        await client.put_file("big.crate", path, hashlib.sha256(data).hexdigest())
    finally:
        await client.close()
    assert s3_bucket.read("mirror/big.crate") == data
    assert s3_bucket.unfinished_uploads() == []


async def test_a_failed_part_aborts_the_upload(
    s3_bucket: TestBucket, store_proxy: StoreProxy, tmp_path: Path
) -> None:
    """A part that cannot be sent: StoreUnavailable, no object, the upload aborted."""
    data = os.urandom(MIN_PART_BYTES + 10)
    path = tmp_path / "big"
    path.write_bytes(data)
    store_proxy.faults.add("reset", match="partNumber=2")
    client = _client(s3_bucket, store_proxy.url)
    try:
        with pytest.raises(StoreUnavailable, match=r"big\.crate"):
            await client.put_file("big.crate", path, hashlib.sha256(data).hexdigest())
    finally:
        await client.close()
    assert s3_bucket.objects() == []
    assert s3_bucket.unfinished_uploads() == []
    calls = [(r.method, r.fault) for r in store_proxy.requests.all() if "uploadId" in r.query]
    assert ("PUT", "reset") in calls and calls[-1] == ("DELETE", None)  # part 2, then abort


async def test_stale_uploads_are_aborted(s3_bucket: TestBucket) -> None:
    """An upload left by a replica killed mid-way is aborted; only under our prefix."""
    s3_bucket.s3.create_multipart_upload(Bucket=s3_bucket.name, Key="mirror/crates/x.crate")
    s3_bucket.s3.create_multipart_upload(Bucket=s3_bucket.name, Key="other-mirror/y.crate")
    client = _client(s3_bucket, s3_bucket.endpoint)
    try:
        assert await client.abort_stale_uploads(0) == 1
    finally:
        await client.close()
    assert s3_bucket.unfinished_uploads() == ["other-mirror/y.crate"]


def test_only_uploads_older_than_the_cutoff_are_stale() -> None:
    """Age from ListMultipartUploads' Initiated (moto reports a fixed 2010 date, so the age
    rule is tested on S3's documented answer here)."""
    listing = ET.fromstring(
        '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Upload><Key>m/old</Key><UploadId>1</UploadId>"
        "<Initiated>2026-11-27T10:00:00.000Z</Initiated></Upload>"
        "<Upload><Key>m/new</Key><UploadId>2</UploadId>"
        "<Initiated>2026-11-27T11:59:00.000Z</Initiated></Upload>"
        "<Upload><Key>m/unknown</Key><UploadId>3</UploadId></Upload>"
        "</ListMultipartUploadsResult>"
    )
    noon = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
    assert stale_uploads(listing, noon - 3600) == [("m/old", "1")]


async def test_a_cut_read_resumes_with_a_range(
    s3_bucket: TestBucket, store_proxy: StoreProxy
) -> None:
    """A body cut short is resumed where it stopped, bound to the same ETag."""
    data = os.urandom(300_000)
    s3_bucket.write("mirror/obj", data)
    store_proxy.faults.add("truncate", match="GET /", times=1, keep=100_000)
    client = _client(s3_bucket, store_proxy.url)
    try:
        async with client.stream("obj", 10**6) as chunks:
            assert chunks is not None
            got = b"".join([c async for c in chunks])
    finally:
        await client.close()
    assert got == data
    assert store_proxy.requests.count(status=206) == 1


async def test_an_unreachable_store_is_a_clear_error_without_secrets(
    s3_bucket: TestBucket, store_proxy: StoreProxy
) -> None:
    """Resets on every request: StoreUnavailable naming the call and the key; neither the
    error, the client's repr nor the logs show the secret key."""
    store_proxy.faults.add("reset")
    client = _client(s3_bucket, store_proxy.url)
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(StoreUnavailable) as caught:
            await client.get("index/se/rd/serde", 100)
    finally:
        await client.close()
    message = str(caught.value)
    assert "GET index/se/rd/serde" in message and "after 2 attempts" in message
    assert SECRET_KEY not in message + repr(client) + repr(logs)


async def test_a_missing_bucket_is_an_error_not_an_empty_bucket(s3_bucket: TestBucket) -> None:
    """A typo in s3_bucket: reads must not quietly miss; writes name S3's error code."""
    location = S3Location.of("no-such-bucket-here", s3_bucket.endpoint, "us-east-1", "", "path")
    client = S3Client(location, Credentials(ACCESS_KEY, SECRET_KEY))
    try:
        with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
            await client.put("k", b"v")  # a 4xx is not retried
        with pytest.raises(StoreUnavailable, match="no bucket"):
            await client.get("k", 100)
        with pytest.raises(StoreUnavailable, match="no bucket"):
            async with client.stream("k", 100):
                pass
        with pytest.raises(StoreUnavailable, match="no bucket"):
            await client.check()
    finally:
        await client.close()
    good = _client(s3_bucket, s3_bucket.endpoint)
    try:
        await good.check()
    finally:
        await good.close()
