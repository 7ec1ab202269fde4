"""Pose tables as DeepLabCut writes them: MultiIndex columns scorer/bodyparts/coords (x, y, likelihood),
one row per frame, HDF5 key df_with_missing; CSV and Parquet on request.

Rows are streamed to local files as they come (memory flat in video length) and published whole, atomically.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from posecluster import storage
from posecluster.data.formats import hdf5
from posecluster.data.formats.dlc import HDF_KEY, LEVELS, write_hdf
from posecluster.data.tracks import PoseTrack
from posecluster.errors import InputError

FORMATS = ("h5", "csv", "parquet")


def pose_columns(scorer: str, bodyparts: list[str]) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([[scorer], bodyparts, ["x", "y", "likelihood"]], names=LEVELS)


def pose_frame(scorer: str, bodyparts: list[str], start: int, poses: np.ndarray) -> pd.DataFrame:
    """poses (n, K, 3) for frames start..start+n-1."""
    flat = np.asarray(poses, dtype=np.float64).reshape(len(poses), -1)
    return pd.DataFrame(flat, index=pd.RangeIndex(start, start + len(poses)), columns=pose_columns(scorer, bodyparts))


class PoseTableWriter:
    """Append rows in frame order (gaps filled with NaN), then publish to `<base>.h5` (+ csv/parquet)."""

    def __init__(self, scorer: str, bodyparts: list[str], scratch: str, formats=("h5",), chunk_rows: int = 4096):
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown pose table formats {sorted(unknown)}; choose from {FORMATS}")
        self.table_sha256: str | None = None  # the h5 table's, once published
        self.scorer, self.bodyparts, self.formats = scorer, list(bodyparts), tuple(dict.fromkeys(("h5", *formats)))
        self.paths = {fmt: f"{scratch}/poses.{fmt}" for fmt in self.formats}
        self.next_frame = 0
        self.rows = 0
        self._pending: list[np.ndarray] = []
        self._pending_start = 0
        self._chunk_rows = chunk_rows
        self._store = pd.HDFStore(self.paths["h5"], mode="w")
        self._parquet: pq.ParquetWriter | None = None
        self._csv_started = False

    def append(self, first_frame: int, poses: np.ndarray) -> None:
        if first_frame < self.next_frame:
            raise ValueError(f"rows must come in frame order: got {first_frame} after {self.next_frame - 1}")
        if first_frame > self.next_frame:
            gap = np.full((first_frame - self.next_frame, len(self.bodyparts), 3), np.nan)
            self._buffer(gap)
        self._buffer(np.asarray(poses, dtype=np.float64))

    def pad_to(self, frame_count: int) -> None:
        if frame_count > self.next_frame:
            self.append(frame_count, np.zeros((0, len(self.bodyparts), 3)))

    def _buffer(self, poses: np.ndarray) -> None:
        if not self._pending:
            self._pending_start = self.next_frame
        self._pending.append(poses)
        self.next_frame += len(poses)
        if self.next_frame - self._pending_start >= self._chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        frame = self._table(self._pending_start, np.concatenate(self._pending))
        self._pending = []
        if frame.empty:
            return
        self._store.append(HDF_KEY, frame, format="table", index=False)
        if "csv" in self.formats:
            frame.to_csv(self.paths["csv"], mode="a" if self._csv_started else "w", header=not self._csv_started)
            self._csv_started = True
        if "parquet" in self.formats:
            table = pa.Table.from_pandas(frame)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.paths["parquet"], table.schema)
            self._parquet.write_table(table)
        self.rows += len(frame)

    def _table(self, start: int, poses: np.ndarray) -> pd.DataFrame:
        """Rows (n, K, 3) for frames start.. as the table's DataFrame (a multi-animal writer has its own)."""
        return pose_frame(self.scorer, self.bodyparts, start, poses)

    def publish(self, base_uri: str) -> dict[str, str]:
        """Finish the files and upload each whole; returns format -> URI."""
        self._flush()
        if self.rows == 0:  # an empty table still gets its header
            self._store.put(HDF_KEY, self._table(0, np.zeros((0, len(self.bodyparts), 3))), format="table")
        self._store.close()
        hdf5.stamp_for_pandas2(self.paths["h5"])
        if self._parquet is not None:
            self._parquet.close()
        # The h5 table's sha256 from the local file, for its _meta.json: not read back from storage.
        self.table_sha256 = storage.file_sha256(self.paths["h5"])
        published = {}
        for fmt in self.formats:
            uri = f"{base_uri}.{fmt}"
            storage.atomic_upload(self.paths[fmt], uri)
            published[fmt] = uri
        return published

    def close(self) -> None:
        if self._store.is_open:
            self._store.close()
        if self._parquet is not None:
            self._parquet.close()


def read_pose_table(uri: str) -> pd.DataFrame:
    with storage.local_copy(uri) as path:
        try:
            if uri.endswith(".h5"):
                return hdf5.read_frame(path, uri, key=HDF_KEY, what="pose table")
            if uri.endswith(".parquet"):
                return pd.read_parquet(path)
            return pd.read_csv(path, header=[0, 1, 2], index_col=0)
        except (FileNotFoundError, InputError):
            raise
        except Exception as exc:  # HDF5/Arrow/CSV readers each raise their own types for a damaged file
            raise InputError(uri, f"not a readable pose table: damaged, truncated or another format "
                                  f"({type(exc).__name__})") from None


def read_track(uri: str) -> PoseTrack:
    """A DLC pose table (.h5, .csv or .parquet) as a PoseTrack; a table that is not one is an InputError."""
    return track_from_frame(read_pose_table(uri), uri)


def track_from_frame(frame: pd.DataFrame, uri: str) -> PoseTrack:
    """A pose table read from `uri` as a PoseTrack; a table that is not one is an InputError naming `uri`."""
    try:
        scorer = str(frame.columns.get_level_values("scorer")[0])
        bodyparts = [str(b) for b in frame.columns.get_level_values("bodyparts").unique()]
        return PoseTrack(scorer, bodyparts, table_to_array(frame, bodyparts))
    except (FileNotFoundError, InputError):
        raise
    except (KeyError, ValueError, IndexError, OSError) as exc:
        raise InputError(uri, f"not a DLC pose table (scorer/bodyparts/coords with x, y, likelihood): {exc}") from None


def write_track(track: PoseTrack, uri: str) -> str | None:
    """Write a PoseTrack as a DLC pose table; the format follows the suffix; appears atomically. Returns
    an h5 table's sha256 (for its _meta.json)."""
    frame = pose_frame(track.scorer, track.bodyparts, 0, track.poses)
    if uri.endswith(".h5"):
        return write_hdf(frame, uri, layout="table")  # as DeepLabCut writes pose and _filtered tables
    elif uri.endswith(".csv"):
        storage.atomic_write_bytes(uri, frame.to_csv().encode())
    elif uri.endswith(".parquet"):
        with storage.scratch_dir() as tmp:
            frame.to_parquet(f"{tmp}/t.parquet")
            storage.atomic_upload(f"{tmp}/t.parquet", uri)
    else:
        raise ValueError(f"{uri}: pose tables are .h5, .csv or .parquet")
    return None


def table_to_array(frame: pd.DataFrame, bodyparts: list[str]) -> np.ndarray:
    """A pose table -> (n, K, 3) float array in the given body-part order."""
    scorer = frame.columns.get_level_values("scorer")[0]
    cols = [(scorer, b, c) for b in bodyparts for c in ("x", "y", "likelihood")]
    return frame[cols].to_numpy(dtype=np.float64).reshape(len(frame), len(bodyparts), 3)
