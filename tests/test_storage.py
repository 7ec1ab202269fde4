"""Contract tests of the storage seam, run against a local folder, a moto S3 server and a real Ceph RGW over
HTTP and HTTPS alike (and a facility's endpoint: tests/conftest.py says how)."""

from __future__ import annotations

import os

import pytest

from posecluster import storage


def test_written_bytes_read_back_identically(store_root):
    uri = storage.join(store_root, "a", "b.bin")
    storage.atomic_write_bytes(uri, b"\x00payload\xff")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"\x00payload\xff"


def test_listing_finds_nested_files_by_suffix_sorted(store_root):
    for name in ("v/b.mp4", "v/a.MP4", "v/sub/c.mp4", "v/notes.txt"):
        storage.atomic_write_bytes(storage.join(store_root, name), b"x")
    found = storage.list_files(storage.join(store_root, "v"), suffixes=(".mp4",))
    assert [storage.basename(u) for u in found] == ["a.MP4", "b.mp4", "c.mp4"]
    assert all(u.startswith(store_root.split("/root")[0]) for u in found)


def test_listing_a_missing_prefix_names_it(store_root):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        storage.list_files(storage.join(store_root, "nothing-here"))


def test_reading_a_missing_object_names_its_uri(store_root):
    uri = storage.join(store_root, "missing.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        storage.read_bytes(uri)


def test_identity_changes_when_object_is_rewritten(store_root):
    uri = storage.join(store_root, "video.mp4")
    storage.atomic_write_bytes(uri, b"first version")
    before = storage.identity(uri)
    storage.atomic_write_bytes(uri, b"second, longer version")
    after = storage.identity(uri)
    assert before.size == len(b"first version") and after.size == len(b"second, longer version")
    assert before.key() != after.key()


def test_upload_publishes_a_local_file_whole(store_root, tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(os.urandom(3 << 20))
    uri = storage.join(store_root, "out", "big.bin")
    storage.atomic_upload(str(local), uri)
    assert storage.read_bytes(uri) == local.read_bytes()
    with storage.local_copy(uri) as path:
        assert open(path, "rb").read() == local.read_bytes()


def test_local_atomic_write_leaves_no_temporary_files(tmp_path):
    uri = str(tmp_path / "dir" / "table.h5")
    storage.atomic_write_bytes(uri, b"abc")
    storage.atomic_write_bytes(uri, b"abcd")
    assert os.listdir(tmp_path / "dir") == ["table.h5"]


def test_uri_helpers_keep_the_scheme():
    assert storage.join("s3://b/p/", "x", "/y.h5") == "s3://b/p/x/y.h5"
    assert storage.parent("s3://b/p/x.h5") == "s3://b/p"
    assert storage.stem("s3://b/p/video.final.mp4") == "video.final"
    assert storage.parent("/tmp/a/b") == "/tmp/a"


def test_exclusive_create_refuses_an_existing_object(store_root):
    uri = storage.join(store_root, "claims", "one.json")
    assert storage.create_exclusive(uri, b"first") is True
    assert storage.create_exclusive(uri, b"second") is False
    assert storage.read_bytes(uri) == b"first"


SECRET = "wr0ng-Secret-Never-Logged-4f9a"


@pytest.fixture
def wrong_credentials(object_store, store_bucket):
    """The store checking signatures (a real RGW always does; moto once told to) and a client holding a
    wrong key pair."""
    import requests

    storage.atomic_write_bytes(f"{store_bucket}/poses/aDLC_meta.json", b"{}")
    previous = None
    if object_store.name == "moto":
        previous = requests.post(f"{object_store.endpoint}/moto-api/reset-auth", data=b"0").json()
    storage.set_default_options("s3", {"use_listings_cache": False, "key": "AKIAWRONGKEY", "secret": SECRET})
    try:
        yield store_bucket
    finally:
        storage.set_default_options("s3", {"use_listings_cache": False})
        if previous is not None:
            requests.post(f"{object_store.endpoint}/moto-api/reset-auth",
                          data=str(previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]).encode())


def test_wrong_credentials_give_a_clear_storage_error_without_the_secret(wrong_credentials, caplog, capsys):
    import traceback

    from posecluster.cli.main import main

    bucket = wrong_credentials
    caplog.set_level("DEBUG")
    failures = []
    for operation, call in (("read", lambda: storage.read_bytes(f"{bucket}/poses/aDLC_meta.json")),
                            ("write", lambda: storage.atomic_write_bytes(f"{bucket}/out/x.json", b"{}")),
                            ("list", lambda: storage.list_files(f"{bucket}/poses"))):
        with pytest.raises(storage.StorageError) as info:
            call()
        error = info.value
        assert isinstance(error, OSError) and error.__cause__ is not None  # retry policies see the original
        assert str(error).startswith(f"{bucket}/") and "failed" in str(error) and "credentials" in str(error)
        failures.append("".join(traceback.format_exception(error)))
    assert main(["filter", f"{bucket}/poses"]) != 0
    printed = capsys.readouterr()
    assert f"{bucket}/poses" in printed.err + printed.out
    for text in failures + [caplog.text, printed.out, printed.err]:
        assert SECRET not in text


def test_a_local_listing_through_a_link_back_up_the_tree_ends(tmp_path):
    from posecluster.storage.listing import list_identities

    (tmp_path / "v" / "a").mkdir(parents=True)
    (tmp_path / "v" / "a" / "x.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "v", tmp_path / "v" / "a" / "loop")  # a link to an ancestor: an endless walk
    found = list_identities(str(tmp_path / "v"), (".mp4",))
    assert [i.uri for i in found] == [str(tmp_path / "v" / "a" / "x.mp4")]
