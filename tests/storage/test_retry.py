"""Transient storage faults are retried with backoff; missing objects and denied access are not."""

from __future__ import annotations

import socket

import pytest

from posecluster import storage
from posecluster.storage.listing import list_identities
from posecluster.storage.retry import call, is_transient


def test_connection_refused_from_a_real_endpoint_is_transient_and_a_missing_object_is_not(store_bucket):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(Exception) as refused:
        client.list_buckets()
    assert is_transient(refused.value)
    with pytest.raises(FileNotFoundError) as missing:
        storage.read_bytes(f"{store_bucket}/nothing-here")
    assert not is_transient(missing.value)


def test_a_call_that_fails_transiently_is_retried_until_it_succeeds():
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionResetError(104, "Connection reset by peer")
        return "ok"

    assert call(flaky, patience_s=30) == "ok" and len(attempts) == 3
    missing = []

    def not_there() -> None:
        missing.append(1)
        raise FileNotFoundError("s3://b/k: no such object")

    with pytest.raises(FileNotFoundError):
        call(not_there, patience_s=30)
    assert len(missing) == 1


def test_one_listing_gives_the_identity_a_head_request_gives(store_bucket):
    s3_bucket = store_bucket
    for name in ("a.mp4", "day2/b.mp4", "notes.txt"):
        storage.atomic_write_bytes(f"{s3_bucket}/in/{name}", name.encode() * 10)
    listed = list_identities(f"{s3_bucket}/in/", (".mp4",))
    assert [i.uri for i in listed] == [f"{s3_bucket}/in/a.mp4", f"{s3_bucket}/in/day2/b.mp4"]
    assert listed == [storage.identity(i.uri) for i in listed]
    assert list_identities(f"{s3_bucket}/absent/") == []
