"""What real S3 servers send, on every store (moto, Ceph RGW over HTTP and HTTPS, a facility's endpoint):
conditional creates that a second writer loses, 412s known by status, pins that hold without a strong ETag,
multipart ETags, uploads without streaming checksums, and a server lacking conditional creates refused at
the start of a job."""

from __future__ import annotations

import time

import pytest

from posecluster import storage
from posecluster.storage import ObjectChangedError, ObjectIdentity, StorageError
from posecluster.storage.pinned import ReadAhead, open_pinned, read_pinned
from tests.storage.proxies import HeaderStripper

DATA = bytes(range(256)) * 4096  # 1 MiB


def test_a_second_exclusive_create_loses_and_the_job_start_check_passes(store_bucket):
    uri = f"{store_bucket}/claims/video.json"
    assert storage.create_exclusive(uri, b"first") is True
    assert storage.create_exclusive(uri, b"second") is False  # 412 by status, whatever the body says
    assert storage.read_bytes(uri) == b"first"
    storage.check_conditional_create(f"{store_bucket}/claims")
    assert storage.list_files(f"{store_bucket}/claims") == [uri]  # the probe leaves nothing behind


def test_a_server_that_ignores_if_none_match_is_refused_when_the_job_starts(s3_bucket, s3_server, monkeypatch):
    stripper = HeaderStripper(s3_server.get_host_and_port()[1], b"if-none-match:")
    monkeypatch.setitem(storage._default_options, "s3", {
        "use_listings_cache": False, "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{stripper.port}"}})
    monkeypatch.setattr(storage, "_conditional_create_checked", set())
    with pytest.raises(StorageError, match="does not honour conditional creates") as refused:
        storage.check_conditional_create(f"{s3_bucket}/claims")
    assert s3_bucket in str(refused.value) and not refused.value.transient
    assert storage.list_files(f"{s3_bucket}/claims") == [] if storage.exists(f"{s3_bucket}/claims") else True


def test_a_replaced_object_is_changed_during_the_job_not_a_read_failure(store_bucket):
    uri = f"{store_bucket}/video.bin"
    storage.atomic_write_bytes(uri, DATA)
    identity = storage.identity(uri)
    storage.atomic_write_bytes(uri, DATA[::-1])  # same size, other bytes
    with pytest.raises(ObjectChangedError, match="changed during the job"):
        read_pinned(identity, patience_s=5)
    with pytest.raises(ObjectChangedError, match="changed during the job"):
        open_pinned(identity, ReadAhead(block=64 << 10), patience_s=5).read(100)


def test_a_multipart_objects_etag_pins_its_reads(object_store, store_bucket):
    bucket, _, prefix = store_bucket[len("s3://"):].partition("/")
    key = f"{prefix}/multipart.bin".lstrip("/")
    client = object_store.client()
    parts = [DATA * 5, DATA[: 1 << 10]]  # 5 MiB (the smallest part S3 allows) and the rest
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    etags = [client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n + 1, Body=part)["ETag"]
             for n, part in enumerate(parts)]
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={
        "Parts": [{"ETag": etag, "PartNumber": n + 1} for n, etag in enumerate(etags)]})
    uri = f"s3://{bucket}/{key}"
    identity = storage.identity(uri)
    assert identity.version.endswith("-2") and identity.size == sum(map(len, parts))
    with open_pinned(identity, ReadAhead(block=1 << 20)) as reader:
        reader.seek(5 * len(DATA) - 10)
        assert reader.read(20) == (b"".join(parts))[5 * len(DATA) - 10 : 5 * len(DATA) + 10]
    storage.atomic_write_bytes(uri, b"".join(parts)[::-1])  # a single-part object now: another ETag
    with pytest.raises(ObjectChangedError, match="changed during the job"):
        read_pinned(identity, patience_s=5)


def test_without_a_strong_etag_reads_are_pinned_by_size_and_modification_time(store_bucket):
    uri = f"{store_bucket}/weak.bin"
    storage.atomic_write_bytes(uri, DATA)
    planned = storage.identity(uri)
    assert planned.modified, "every store reports LastModified"
    for version in ("", f'W/"{planned.version}"'):  # a listing without ETags, a weak ETag
        weak = ObjectIdentity(uri, planned.size, version or planned.modified, modified=planned.modified)
        assert read_pinned(weak, patience_s=5) == DATA
    time.sleep(1.1)  # LastModified has whole seconds: a replacement within the same second looks the same
    storage.atomic_write_bytes(uri, DATA[::-1])  # same size
    for version in ("", f'W/"{planned.version}"'):
        weak = ObjectIdentity(uri, planned.size, version or planned.modified, modified=planned.modified)
        with pytest.raises(ObjectChangedError, match="changed during the job"):
            read_pinned(weak, patience_s=5)


def test_an_object_that_cannot_be_pinned_is_refused_with_the_reason(store_bucket):
    uri = f"{store_bucket}/unpinnable.bin"
    storage.atomic_write_bytes(uri, DATA)
    with pytest.raises(StorageError, match="cannot be read pinned") as refused:
        read_pinned(ObjectIdentity(uri, len(DATA), ""), patience_s=5)
    assert "not sharded" in str(refused.value) and not refused.value.transient


def test_uploads_ask_for_checksums_only_when_required_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(storage.CHECKSUM_ENV, raising=False)
    fs, _ = storage.filesystem("s3://bucket/key")
    assert fs.config_kwargs["request_checksum_calculation"] == "when_required"
    monkeypatch.setenv(storage.CHECKSUM_ENV, "when_supported")  # botocore's own default, where a server has it
    fs, _ = storage.filesystem("s3://bucket/other")
    assert "request_checksum_calculation" not in fs.config_kwargs


def test_a_profile_that_chooses_checksums_is_honoured(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.CHECKSUM_ENV, raising=False)
    (tmp_path / "config").write_text("[default]\nrequest_checksum_calculation = when_supported\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    fs, _ = storage.filesystem("s3://bucket/profiled")
    assert "request_checksum_calculation" not in fs.config_kwargs
