"""Reads pinned to the identity a job planned, against local files, the moto S3 server and a real Ceph RGW
(HTTP and HTTPS): a range costs
about its own bytes and requests, and an object that changes between reads is caught, also by a server
that ignores If-Match; transient vs permanent survives pickling; secrets in URIs never show."""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle

import pytest

from posecluster import storage
from posecluster.storage import ObjectChangedError, StorageError
from posecluster.storage.pinned import ReadAhead, open_pinned, read_pinned
from posecluster.storage.retry import is_transient
from tests.storage.proxies import HeaderStripper

DATA = bytes(range(256)) * 4096  # 1 MiB, every offset recognisable


@pytest.fixture
def stored(store_root) -> str:
    """A 1 MiB object on a local folder and on every object store (moto, Ceph RGW over HTTP and HTTPS)."""
    uri = f"{store_root}/video.bin"
    storage.atomic_write_bytes(uri, DATA)
    return uri


def test_a_pinned_read_gives_the_bytes_at_any_offset(stored):
    identity = storage.identity(stored)
    with open_pinned(identity, ReadAhead(block=64 << 10)) as reader:
        for offset, size in ((0, 10), (500_000, 70_000), (123, 5), (len(DATA) - 3, 10)):
            reader.seek(offset)
            assert reader.read(size) == DATA[offset : offset + size]
    assert read_pinned(identity) == DATA


def test_a_window_is_fetched_in_one_request_and_costs_about_its_bytes(store_bucket):
    uri = f"{store_bucket}/segmented.bin"
    storage.atomic_write_bytes(uri, DATA)
    window = (300_000, 700_000)
    with open_pinned(storage.identity(uri), ReadAhead(block=window[1] - window[0], window=window)) as reader:
        reader.seek(window[0])
        while reader.tell() < window[1] + 20_000:  # a decoder reads a little past the range's end
            assert reader.read(8192) == DATA[reader.tell() - 8192 : reader.tell()]
        assert reader.requests == 2  # the window, then one small piece beyond it
        assert window[1] - window[0] <= reader.bytes_read <= window[1] - window[0] + (64 << 10)


def test_planning_reads_an_index_at_the_end_in_one_request(store_bucket):
    uri = f"{store_bucket}/indexed.bin"
    storage.atomic_write_bytes(uri, DATA * 8)  # 8 MiB: an "index" in its last 1%
    with open_pinned(storage.identity(uri), ReadAhead.planning(len(DATA) * 8), keep=16) as reader:
        reader.read(8192)  # the header
        reader.seek(len(DATA) * 8 - 60_000)
        for _ in range(7):
            reader.read(8192)
        assert reader.requests == 2 and reader.bytes_read == (64 << 10) + 60_000


def test_a_prefetched_range_serves_the_reads_inside_it_in_one_request(stored):
    storage.atomic_write_bytes(stored, DATA * 8)  # 8 MiB: planning's tail rule (the last 1%) stays out of it
    identity = storage.identity(stored)
    ahead = dataclasses.replace(ReadAhead.planning(identity.size), most=1 << 20)
    with open_pinned(identity, ahead, keep=16) as reader:
        assert reader.read(8192) == DATA[:8192]  # the head: one block of 64 KiB
        reader.prefetch(40_000, 600_000)  # what the caller knows it will read: one request, from the head's end
        reader.prefetch(100_000, 200_000)  # already held: none
        reader.prefetch(700_000, 700_000 + (1 << 20) + 1)  # over `most` (a damaged box size): declined
        reader.seek(40_000)
        while reader.tell() < 600_000:
            size = min(8192, 600_000 - reader.tell())
            assert reader.read(size) == (DATA * 8)[reader.tell() - size : reader.tell()]
        assert reader.requests == 2 and reader.bytes_read == 600_000
        assert reader.read(100) == (DATA * 8)[600_000:600_100]  # past it: media data, one block as after a head
        assert reader.requests == 3 and reader.bytes_read == 600_000 + (256 << 10)


def test_an_object_changed_between_reads_is_caught(stored):
    identity = storage.identity(stored)
    reader = open_pinned(identity, ReadAhead(block=64 << 10))
    assert reader.read(100) == DATA[:100]
    if "://" not in stored:
        os.utime(stored, (1, 1))  # rewritten in place: a new mtime
    else:
        storage.atomic_write_bytes(stored, DATA[::-1])  # replaced: a new ETag
    reader.seek(800_000)
    with pytest.raises(ObjectChangedError, match="changed during the job"):
        reader.read(100)
    with pytest.raises(ObjectChangedError, match="changed during the job"):
        read_pinned(identity)
    assert not is_transient(ObjectChangedError("x"))


def test_a_server_that_ignores_if_match_is_reported_and_the_change_still_caught(s3_bucket, s3_server, monkeypatch,
                                                                                  caplog):
    from posecluster.storage import pinned

    uri = f"{s3_bucket}/ignored.bin"
    storage.atomic_write_bytes(uri, DATA)
    identity = storage.identity(uri)
    storage.atomic_write_bytes(uri, DATA[::-1])  # changed before the read
    stripper = HeaderStripper(s3_server.get_host_and_port()[1], b"if-match:")
    # A filesystem of its own for the proxy (fsspec keeps one per set of options).
    monkeypatch.setitem(storage._default_options, "s3", {
        "use_listings_cache": False, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{stripper.port}"}})
    monkeypatch.setattr(pinned, "_warned_if_match_ignored", set())
    with caplog.at_level(logging.WARNING, logger="posecluster.storage.pinned"):
        with pytest.raises(ObjectChangedError, match="changed during the job"):
            read_pinned(identity)
    assert "ignored a conditional read" in caplog.text


def test_transient_or_not_survives_pickling_as_ray_moves_it():
    outage = StorageError("s3://b/k: read failed: ConnectTimeoutError", transient=True)
    refused = StorageError("s3://b/k: read failed: AccessDenied", transient=False)
    for error, transient in ((outage, True), (refused, False)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is StorageError and str(copy) == str(error) and is_transient(copy) is transient
    changed = pickle.loads(pickle.dumps(ObjectChangedError("s3://b/k: changed during the job")))
    assert isinstance(changed, ObjectChangedError) and not is_transient(changed)


def test_secrets_in_uris_are_redacted_and_left_out_of_identities():
    presigned = ("https://bucket.s3.amazonaws.com/v/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abc123")
    assert storage.redact_uri(presigned) == (
        "https://bucket.s3.amazonaws.com/v/a.mp4?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Signature=***")
    assert storage.canonical_uri(presigned) == "https://bucket.s3.amazonaws.com/v/a.mp4"
    assert storage.redact_uri("s3://AKIA:hunter2@bucket/k.mp4") == "s3://***@bucket/k.mp4"
    assert "hunter2" not in storage.redact_uri("failed to read s3://AKIA:hunter2@bucket/k.mp4 (timeout)")
    assert storage.redact_uri("/data/a.mp4") == "/data/a.mp4"
    same = storage.ObjectIdentity(presigned, 10, "e").key()
    assert same == storage.ObjectIdentity(presigned.replace("abc123", "def456"), 10, "e").key()


def test_a_query_that_selects_the_object_stays_in_a_record_and_access_parameters_do_not():
    presigned = ("https://bucket.s3.amazonaws.com/v/a.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2026"
                 "&X-Amz-Security-Token=FwoG&X-Amz-Signature=abc123&versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert storage.redact_uri(presigned) == (
        "https://bucket.s3.amazonaws.com/v/a.mp4?X-Amz-Algorithm=***&X-Amz-Credential=***&X-Amz-Security-Token=***"
        "&X-Amz-Signature=***&versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert storage.redact_uri("https://host/v/mouse.mp4?id=2") == "https://host/v/mouse.mp4?id=2"
    v2 = "https://h/v.mp4?AWSAccessKeyId=AKIA&Signature=s1g&Expires=99&generation=7"
    assert storage.redact_uri(v2) == "https://h/v.mp4?AWSAccessKeyId=***&Signature=***&Expires=***&generation=7"
    # Names that look like a secret's are redacted whatever they do; so is a parameter with no value.
    looks_secret = ("token", "api_key", "apiKey", "access_token", "sessionid", "auth", "password", "code", "jwt",
                    "X%2DAmz%2DSignature", "sig", "sv")
    for name in looks_secret:
        assert storage.redact_uri(f"https://h/v.mp4?id=1&{name}=hunter2") == f"https://h/v.mp4?id=1&{name}=***"
    assert storage.redact_uri("https://h/v.mp4?hunter2") == "https://h/v.mp4?***"
    # Any other name's value is hidden: CDNs sign with names no list of secret words knows (nginx's md5,
    # Akamai's hdnts, Cloudflare's verify, bare letters), and an allowlisted name with a value that is not
    # a plain identifier (a `;sig=` tail, a nested signed URL) is hidden too.
    for pair in ("md5=hunter2", "expires=hunter2", "hdnts=exp%3D1~hmac%3Dhunter2", "hash=hunter2", "h=hunter2",
                 "s=hunter2", "t=hunter2", "tk=hunter2", "k=hunter2", "psk=hunter2", "verify=hunter2",
                 "mac=hunter2", "id=2;sig=hunter2", "url=https://x/y?Signature=hunter2", "id=hunter2/../x"):
        name = pair.split("=", 1)[0]
        assert storage.redact_uri(f"https://h/v.mp4?{pair}") == f"https://h/v.mp4?{name}=***", pair
        assert "hunter2" not in storage.redact_uri(f"failed to read https://h/v.mp4?{pair} (timeout)"), pair
    assert storage.redact_uri("https://u:hunter2@h/v.mp4?versionId=1") == "https://***@h/v.mp4?versionId=1"
    # In a message, the same.
    message = storage.redact_uri(f"failed to read {presigned} (timeout)")
    assert "abc123" not in message and "AKIA" not in message and "FwoG" not in message and "versionId=3HL4" in message
    # The record still names the same object: its identity is the URL's own.
    assert storage.canonical_uri(storage.redact_uri(presigned)) == storage.canonical_uri(presigned)


def test_a_recorded_version_id_reopens_that_version(s3_bucket):
    """A video reached by URL with its versionId, written to a record (redact_uri) and read back from it:
    the bytes of that version, not the key's latest."""
    import boto3

    bucket = s3_bucket.removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # Public, as a lab's web-served videos are: read by URL with no signature.
    first = client.put_object(Bucket=bucket, Key="v/mouse.mp4", Body=b"the first version",
                              ACL="public-read")["VersionId"]
    client.put_object(Bucket=bucket, Key="v/mouse.mp4", Body=b"the latest version", ACL="public-read")
    url = f"{os.environ['AWS_ENDPOINT_URL']}/{bucket}/v/mouse.mp4?versionId={first}"
    recorded = storage.redact_uri(url)
    assert recorded == url
    assert storage.read_bytes(recorded) == b"the first version"
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v/mouse.mp4",
                                                                    "VersionId": first})
    signature = presigned.split("Signature=")[1].split("&")[0]
    assert storage.read_bytes(presigned) == b"the first version"
    assert signature not in storage.redact_uri(presigned) and f"versionId={first}" in storage.redact_uri(presigned)
