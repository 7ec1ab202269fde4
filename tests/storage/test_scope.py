"""The job's scope at the storage seam (storage/scope.py): every public read, list and write is checked."""

from __future__ import annotations

import os
import pickle
import threading

import pytest

from posecluster import storage
from posecluster.storage import scope as scopes
from posecluster.storage.listing import list_folders, list_identities, list_named
from posecluster.storage.pinned import open_pinned, read_pinned
from posecluster.storage.scope import OutOfScopeError, Scope, confined


@pytest.fixture
def labs(tmp_path):
    """Two labs under one root, each with a file; lab B's file holds bytes lab A must never see."""
    root = tmp_path / "root"
    for lab, text in (("a", b"lab a"), ("b", b"LAB-B-SECRET")):
        (root / lab / "data").mkdir(parents=True)
        (root / lab / "data" / "file.txt").write_bytes(text)
    (tmp_path / "outside.txt").write_bytes(b"OUTSIDE-SECRET")
    return root


def test_unconfined_by_default(labs):
    assert scopes.current() is None
    assert storage.read_bytes(str(labs / "b" / "data" / "file.txt")) == b"LAB-B-SECRET"


def test_every_seam_function_refuses_outside_and_allows_inside(labs):
    a, b = labs / "a", labs / "b"
    with confined(Scope.of([str(a)])):
        assert storage.read_bytes(str(a / "data" / "file.txt")) == b"lab a"
        storage.atomic_write_bytes(str(a / "out" / "x.bin"), b"x")
        assert storage.create_exclusive(str(a / "out" / "y.bin"), b"y")
        assert storage.list_files(str(a), (".txt",)) == [str(a / "data" / "file.txt")]
        target = str(b / "data" / "file.txt")
        calls = {
            "read_bytes": lambda: storage.read_bytes(target),
            "open read": lambda: storage.open_uri(target),
            "open write": lambda: storage.open_uri(str(b / "new.txt"), "wb"),
            "exists": lambda: storage.exists(target),
            "identity": lambda: storage.identity(target),
            "remove": lambda: storage.remove(target),
            "list_files": lambda: storage.list_files(str(b)),
            "list_identities": lambda: list_identities(str(b)),
            "list_named": lambda: list_named(str(b / "data" / "file")),
            "atomic_write_bytes": lambda: storage.atomic_write_bytes(str(b / "new.txt"), b"x"),
            "create_exclusive": lambda: storage.create_exclusive(str(b / "new.txt"), b"x"),
            "atomic_upload": lambda: storage.atomic_upload(str(a / "data" / "file.txt"), str(b / "new.txt")),
            "local_copy": lambda: storage.local_copy(target).__enter__(),
            "arrow_filesystem": lambda: storage.arrow_filesystem(str(b / "run")),
        }
        for name, call in calls.items():
            with pytest.raises(OutOfScopeError):
                call()
                pytest.fail(name)
    with confined(Scope.of([str(a)])):
        identity = storage.identity(str(a / "data" / "file.txt"))
        assert read_pinned(identity) == b"lab a"
    outside = storage.identity(str(b / "data" / "file.txt"))  # planned unconfined, read confined
    with confined(Scope.of([str(a)])):
        with pytest.raises(OutOfScopeError):
            read_pinned(outside)
        with pytest.raises(OutOfScopeError):
            open_pinned(outside)
    assert (b / "data" / "file.txt").read_bytes() == b"LAB-B-SECRET"
    assert not (b / "new.txt").exists()


def test_dot_dot_and_prefix_boundaries(labs, tmp_path):
    (labs / "ab").mkdir()
    (labs / "ab" / "f.txt").write_bytes(b"ab")
    with confined(Scope.of([str(labs / "a")])):
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(str(labs / "a" / "data" / ".." / ".." / "b" / "data" / "file.txt"))
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(str(labs / "ab" / "f.txt"))  # a sibling that only starts with the prefix
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(f"file://{labs}/b/data/file.txt")
        assert storage.read_bytes(f"file://{labs}/a/data/file.txt") == b"lab a"
        assert storage.read_bytes(str(labs / "a" / "data" / ".." / "data" / "file.txt")) == b"lab a"
        with pytest.raises(OutOfScopeError):
            storage.read_bytes("memory://a/data/file.txt")  # another scheme altogether


def test_links_are_followed_for_reads_and_writes(labs, tmp_path):
    a, b = labs / "a", labs / "b"
    os.symlink(b / "data", a / "data" / "into-b")  # a folder link into lab B
    os.symlink(b / "data" / "file.txt", a / "data" / "b-file.txt")  # a file link into lab B
    os.symlink(tmp_path / "outside.txt", a / "data" / "outside.txt")
    os.symlink(tmp_path, a / "out-link")  # an output folder that leads outside the root
    (a / "inner").mkdir()
    os.symlink(a / "data" / "file.txt", a / "inner" / "same-lab.txt")  # a link that stays inside: fine
    with confined(Scope.of([str(a)])):
        assert storage.read_bytes(str(a / "inner" / "same-lab.txt")) == b"lab a"
        for target in (a / "data" / "b-file.txt", a / "data" / "into-b" / "file.txt", a / "data" / "outside.txt"):
            with pytest.raises(OutOfScopeError, match="symbolic link"):
                storage.read_bytes(str(target))
        with pytest.raises(OutOfScopeError, match="symbolic link"):
            storage.atomic_write_bytes(str(a / "data" / "into-b" / "planted.png"), b"x")
        with pytest.raises(OutOfScopeError, match="symbolic link"):
            storage.atomic_write_bytes(str(a / "out-link" / "poses.h5"), b"x")  # a file not there yet
        with pytest.raises(OutOfScopeError, match="symbolic link"):
            storage.atomic_write_bytes(str(a / "data" / "b-file.txt"), b"overwritten")
        with pytest.raises(OutOfScopeError):
            storage.list_files(str(a / "data" / "into-b"))
        # Listing lab A's own folder does not hand on what its links lead to (lab B's file names).
        for listing in (lambda: storage.list_files(str(a / "data")), lambda: list_identities(str(a / "data")),
                        lambda: list_named(str(a / "data" / "b-file"))):
            with pytest.raises(OutOfScopeError, match=f"named in {a / 'data'}"):
                listing()
        assert "into-b" not in list_folders(str(a / "data"))  # fsspec lists a linked folder as an entry, not a folder
    assert not (b / "data" / "planted.png").exists() and not (tmp_path / "poses.h5").exists()
    assert (b / "data" / "file.txt").read_bytes() == b"LAB-B-SECRET"


def test_a_scope_given_through_a_link_is_the_real_folder(labs, tmp_path):
    os.symlink(labs / "a", tmp_path / "lab-a-link")
    with confined(Scope.of([str(tmp_path / "lab-a-link")])):
        assert storage.read_bytes(str(labs / "a" / "data" / "file.txt")) == b"lab a"
        assert storage.read_bytes(str(tmp_path / "lab-a-link" / "data" / "file.txt")) == b"lab a"
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(str(labs / "b" / "data" / "file.txt"))


def test_s3_prefixes(s3_bucket):
    for key, body in (("a/x.txt", b"a"), ("ab/x.txt", b"AB-SECRET"), ("b/x.txt", b"B-SECRET")):
        storage.atomic_write_bytes(f"{s3_bucket}/{key}", body)
    with confined(Scope.of([f"{s3_bucket}/a/"])):
        assert storage.read_bytes(f"{s3_bucket}/a/x.txt") == b"a"
        assert storage.list_files(f"{s3_bucket}/a") == [f"{s3_bucket}/a/x.txt"]
        storage.atomic_write_bytes(f"{s3_bucket}/a/y.txt", b"y")
        for uri in (f"{s3_bucket}/ab/x.txt", f"{s3_bucket}/b/x.txt", f"{s3_bucket}/a/../b/x.txt",
                    f"{s3_bucket}/a//x.txt", f"{s3_bucket}-other/a/x.txt", f"{s3_bucket}/a/./x.txt"):
            with pytest.raises(OutOfScopeError):
                storage.read_bytes(uri)
        with pytest.raises(OutOfScopeError):
            storage.list_files(f"{s3_bucket}/ab")
        with pytest.raises(OutOfScopeError):
            list_identities(f"{s3_bucket}/")
        with pytest.raises(OutOfScopeError):
            storage.atomic_write_bytes(f"{s3_bucket}/b/planted.txt", b"x")
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(str(__file__))  # a local file is outside an S3 scope
    assert not storage.exists(f"{s3_bucket}/b/planted.txt")


def test_the_error_names_location_file_and_scope_and_survives_pickling(labs):
    scope = Scope.of([str(labs / "a")])
    location = str(labs / "b" / "data" / "file.txt")
    named_by = str(labs / "a" / "videos.txt")
    with confined(scope):
        with pytest.raises(OutOfScopeError) as caught:
            scopes.check(location, "read", named_by=named_by)
    error = caught.value
    for part in (location, named_by, str((labs / "a").resolve()), "read"):
        assert part in str(error)
    assert isinstance(error, storage.StorageError) and isinstance(error, OSError) and not error.transient
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OutOfScopeError and str(copy) == str(error)
    assert (copy.location, copy.named_by, copy.scope, copy.transient) == (location, named_by, scope.prefixes, False)


def test_credentials_never_in_the_message(labs):
    with confined(Scope.of([str(labs / "a")])):
        with pytest.raises(OutOfScopeError) as caught:
            storage.read_bytes("https://user:hunter2@example.invalid/v.mp4?X-Amz-Signature=abcdef123")
    assert "hunter2" not in str(caught.value) and "abcdef123" not in str(caught.value)


def test_scope_is_per_context_and_threads_started_by_posecluster_inherit_it(labs):
    target = str(labs / "b" / "data" / "file.txt")
    seen = {}

    def read():
        try:
            storage.read_bytes(target)
            seen["result"] = "read"
        except OutOfScopeError:
            seen["result"] = "refused"

    with confined(Scope.of([str(labs / "a")])):
        scopes.start_thread(read, "test").join()
        assert seen["result"] == "refused"
        other = threading.Thread(target=lambda: seen.setdefault("plain", scopes.current()))
        other.start(), other.join()
    assert seen["plain"] is None  # a plain thread has its own (empty) context: hence start_thread/in_context
    assert scopes.current() is None


def test_scratch_folders_stay_usable_inside_a_scope(labs):
    with confined(Scope.of([str(labs / "a")])):
        with storage.scratch_dir() as tmp:
            storage.atomic_write_bytes(f"{tmp}/x.bin", b"x")
            assert storage.read_bytes(f"{tmp}/x.bin") == b"x"
        with pytest.raises(OutOfScopeError):
            storage.read_bytes(f"{tmp}/x.bin")


def test_bad_prefixes_are_refused():
    for bad in ([], [""], ["s3://bucket/a/../b"], ["s3://bucket//a"]):
        with pytest.raises(ValueError):
            Scope.of(bad)


def test_ray_trains_checkpoint_filesystem_never_writes_through_a_link_out_of_the_scope(labs):
    """Ray Train writes checkpoints through storage.arrow_filesystem: a link planted in the run folder must
    not carry them into lab B's folder, and reads through it stay refused too."""
    a, b = labs / "a", labs / "b"
    (a / "run").mkdir()
    os.symlink(b / "data", a / "run" / "checkpoints")
    with confined(Scope.of([str(a)])):
        filesystem, run = storage.arrow_filesystem(str(a / "run"))
        with filesystem.open_output_stream(f"{run}/ok.txt") as out:  # inside: allowed
            out.write(b"fine")
        with pytest.raises(OutOfScopeError, match="symbolic link"):
            filesystem.open_output_stream(f"{run}/checkpoints/epoch-0001.pt")
        with pytest.raises(OutOfScopeError):
            filesystem.open_input_stream(f"{run}/checkpoints/file.txt")
        with pytest.raises(OutOfScopeError):
            filesystem.create_dir(f"{run}/checkpoints/new", recursive=True)
        with pytest.raises(OutOfScopeError):
            filesystem.get_file_info([f"{run}/checkpoints/file.txt"])
    assert sorted(os.listdir(b / "data")) == ["file.txt"] and (a / "run" / "ok.txt").read_bytes() == b"fine"


def test_the_servers_own_weights_folder_may_be_read_never_written(labs, tmp_path):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet50.pth").write_bytes(b"weights")
    with confined(Scope.of([str(labs / "a")])):
        with pytest.raises(OutOfScopeError):
            storage.exists(str(hub / "resnet50.pth"))
        with scopes.also_reading(str(hub)):
            assert storage.exists(str(hub / "resnet50.pth"))
            assert storage.read_bytes(str(hub / "resnet50.pth")) == b"weights"
            with pytest.raises(OutOfScopeError):
                storage.atomic_write_bytes(str(hub / "planted.pth"), b"x")


def test_a_listing_by_name_never_returns_a_neighbours_keys(s3_bucket):
    for key in ("smith/v.mp4", "smithX/secret.mp4", "smith_meta.json"):
        storage.atomic_write_bytes(f"{s3_bucket}/{key}", b"x")
    with confined(Scope.of([f"{s3_bucket}/smith"])):
        with pytest.raises(OutOfScopeError):
            list_named(f"{s3_bucket}/smith")  # lists `smith*` beside the folder: smithX is another lab's
