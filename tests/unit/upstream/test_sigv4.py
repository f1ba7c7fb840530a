"""The SigV4 signer gives the same Authorization as botocore's for the requests the mirror
makes, and never shows a secret."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from unittest import mock
from urllib.parse import quote, urlencode

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from mirror.upstream.sigv4 import EMPTY_SHA256, Credentials, sign

NOW = datetime(2026, 11, 27, 12, 34, 56, tzinfo=UTC)


def _botocore(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    creds: Credentials,
    region: str,
) -> str:
    url = f"http://{host}{quote(path, safe='/~')}"
    if query:
        url += "?" + urlencode(sorted(query.items()), quote_via=quote, safe="~")
    payload = hashlib.sha256(body).hexdigest()
    request = AWSRequest(
        method=method, url=url, headers={**headers, "x-amz-content-sha256": payload}, data=body
    )
    boto = BotoCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(boto, "s3", region).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize(
    ("method", "host", "path", "query", "headers", "body"),
    [
        ("GET", "127.0.0.1:9000", "/bucket/index/se/rd/serde", {}, {}, b""),
        ("HEAD", "s3.eu-west-1.amazonaws.com", "/b/shared/capabilities.lock.yaml", {}, {}, b""),
        ("GET", "b.s3.amazonaws.com", "/crates/ab/ab12.crate", {}, {"Range": "bytes=100-"}, b""),
        ("PUT", "minio:9000", "/b/x/odd key+%/é", {}, {"If-Match": '"abc"'}, b"body"),
        ("PUT", "h:1", "/b/k", {"partNumber": "2", "uploadId": "a/b c=d"}, {}, b"x" * 1000),
        ("POST", "h:1", "/b/k", {"uploads": ""}, {}, b""),
        ("GET", "h:1", "/b", {"uploads": "", "prefix": "mirror/"}, {}, b""),
        ("PUT", "h:1", "/b/k", {}, {"If-None-Match": "*", "Content-Type": "text/plain"}, b"a"),
    ],
)
@pytest.mark.parametrize("token", [None, "session-token"])
def test_signature_matches_botocore(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    token: str | None,
) -> None:
    """Paths with spaces, plus signs and non-ASCII, query values with slashes and spaces,
    empty query values, conditional and range headers, temporary credentials: all sign
    exactly as botocore signs them."""
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    region = "eu-west-1"
    payload = hashlib.sha256(body).hexdigest()
    ours = sign(method, host, path, query, headers, payload, creds, region, NOW)
    theirs = _botocore(method, host, path, query, headers, body, creds, region)
    assert ours["Authorization"] == theirs
    assert ours["x-amz-date"] == "20261127T123456Z"
    assert (ours.get("x-amz-security-token") == token) or token is None


def test_a_changed_header_changes_the_signature() -> None:
    """Range and If-Match are signed: a proxy cannot alter them unnoticed."""
    creds = Credentials("id", "secret")
    one = sign("GET", "h", "/b/k", {}, {"Range": "bytes=0-"}, EMPTY_SHA256, creds, "r", NOW)
    two = sign("GET", "h", "/b/k", {}, {"Range": "bytes=1-"}, EMPTY_SHA256, creds, "r", NOW)
    assert one["Authorization"] != two["Authorization"]


def test_credentials_never_show_their_secret() -> None:
    creds = Credentials("AKIDVISIBLE", "the-secret-value", "the-session-token")
    text = repr(creds) + str(creds)
    assert "AKIDVISIBLE" in text
    assert "the-secret-value" not in text and "the-session-token" not in text


def test_credentials_from_the_usual_environment_variables() -> None:
    env = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert Credentials.from_env(env) == Credentials("id", "s", "t")
    assert Credentials.from_env({"AWS_ACCESS_KEY_ID": "id"}) is None
    assert Credentials.from_env({}) is None
