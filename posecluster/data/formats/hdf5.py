"""HDF5 files as DeepLabCut's pandas reads and writes them: the one place posecluster touches .h5 bytes.

Writing: pandas 3's HDFStore no longer records the `pandas_version` group attribute; pandas 2 (what
DeepLabCut 3.0 runs on) then takes a table-format store for a pre-0.10.1 file and fails with
"'NoneType' object has no attribute 'startswith'". Every store posecluster writes is stamped here with the
attributes DeepLabCut's own files carry (see ../shared/data/dlc-reference).

Reading: pandas stores object columns as pickles and PyTables unpickles attributes on access, so
`pd.read_hdf` on a user's file can run code. `check_safe` reads the raw file with h5py (which never
unpickles) and refuses object nodes and any attribute whose pickle would import or call anything; only
then is the file handed to pandas.
"""

from __future__ import annotations

import pickletools

import h5py
import numpy as np
import pandas as pd
import tables

from posecluster.errors import InputError

# What pandas 2.x writes (and checks for) on every store's group; DeepLabCut's reference files carry it.
PANDAS_VERSION = "0.15.2"

# Pickle opcodes that import a name, call something or build an object: a pickle without any of them
# can only rebuild plain lists, tuples, dicts, strings and numbers (what pandas' table metadata holds).
_UNSAFE_OPCODES = {
    "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD",
    "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
}


def write_frame(frame: pd.DataFrame, path: str, key: str, layout: str) -> None:
    """`frame.to_hdf` to a local path, then stamped so pandas 2.x reads it too."""
    frame.to_hdf(path, key=key, format=layout, mode="w")
    stamp_for_pandas2(path)


def stamp_for_pandas2(path: str) -> None:
    """Give every pandas group in a finished local store (our own file) the attributes pandas 2.x expects,
    written by PyTables as pandas 2 writes them (a UTF-8 string attribute)."""
    with tables.open_file(path, "a") as handle:
        for group in handle.walk_groups():
            names = group._v_attrs._f_list("user")
            if "pandas_type" in names and "pandas_version" not in names:
                group._v_attrs["pandas_version"] = PANDAS_VERSION


def check_safe(path: str, uri: str, what: str = "HDF5 table") -> None:
    """Refuse a store that would make pandas/PyTables unpickle anything beyond plain data (naming `uri`)."""
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(uri, f"not a readable {what}: damaged, truncated or another format") from None
    with handle:
        problems: list[str] = []

        def visit(name, obj) -> None:
            for attr in obj.attrs:
                if _unsafe_pickle(obj.attrs.get_id(attr), obj, attr):
                    problems.append(f"attribute {attr!r} of /{name} is a pickle that imports or calls code")
            if isinstance(obj, h5py.Dataset) and _object_dataset(obj):
                problems.append(f"/{name} holds pickled Python objects")

        for attr in handle.attrs:
            if _unsafe_pickle(handle.attrs.get_id(attr), handle, attr):
                problems.append(f"root attribute {attr!r} is a pickle that imports or calls code")
        handle.visititems(visit)
    if problems:
        raise InputError(uri, "refused: " + "; ".join(problems[:3]) + " (posecluster reads numeric tables only, "
                              "never pickled objects)")


def _object_dataset(dataset: h5py.Dataset) -> bool:
    """PyTables' ObjectAtom (pandas' object columns) is a variable-length uint8 array of pickles."""
    pseudo = dataset.attrs.get("PSEUDOATOM")
    if pseudo is not None and bytes(np.asarray(pseudo).tobytes()).rstrip(b"\0") == b"object":
        return True
    return _holds_objects(dataset.dtype)


def _holds_objects(dtype: np.dtype) -> bool:
    if dtype.names:  # a table's rows: look inside every field
        return any(_holds_objects(dtype.fields[name][0]) for name in dtype.names)
    if dtype.subdtype is not None:
        return _holds_objects(dtype.subdtype[0])
    return dtype.kind in "OV" or h5py.check_vlen_dtype(dtype) is not None


def _unsafe_pickle(attr_id, obj, name: str) -> bool:
    """PyTables unpickles a scalar byte-string attribute that ends with '.' (attributeset.py), so every
    such attribute is scanned as pickle opcodes."""
    if attr_id.shape != () or (attr_id.dtype.kind not in "SO" and h5py.check_string_dtype(attr_id.dtype) is None):
        return False
    raw = obj.attrs[name]
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    if not isinstance(raw, bytes):  # np.bytes_ is bytes; h5py.Empty and arrays are not unpickled
        return False
    return raw.endswith(b".") and _pickle_calls_code(raw)


def _pickle_calls_code(data: bytes) -> bool:
    # pickle runs opcodes as it reads them: one that calls code counts even if the stream breaks later.
    seen: set[str] = set()
    try:
        for op, _arg, _pos in pickletools.genops(data):
            seen.add(op.name)
    except Exception:  # malformed, or not a pickle at all: judge by what was read
        pass
    return bool(_UNSAFE_OPCODES & seen)


def read_frame(path: str, uri: str, key: str | None = None, what: str = "HDF5 table") -> pd.DataFrame:
    """`pd.read_hdf` after `check_safe`; an unreadable store is an InputError naming `uri`."""
    check_safe(path, uri, what)
    try:
        return pd.read_hdf(path, key=key) if key else pd.read_hdf(path)
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(uri, f"cannot read HDF5 table: {exc}") from None
