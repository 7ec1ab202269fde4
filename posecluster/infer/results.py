"""Finding analysis results again: every pose table written by `analyze` or `infer` has a
`<video><scorer>_meta.json` beside it naming the video, the model and the table."""

from __future__ import annotations

import json
from dataclasses import dataclass

from posecluster import storage
from posecluster.data.video import VIDEO_SUFFIXES
from posecluster.errors import InputError


@dataclass(frozen=True)
class AnalysisRecord:
    video: str
    table: str  # the .h5 pose table
    model: str  # model.pt URI
    meta: str


def find_results(inputs: list[str]) -> list[AnalysisRecord]:
    """Results under prefixes/folders of pose tables, or named by their _meta.json or .h5 URIs."""
    metas: list[str] = []
    for item in inputs:
        if item.endswith("_meta.json"):
            metas.append(item)
        elif item.endswith(".h5"):
            metas.append(item[: -len(".h5")] + "_meta.json")
        elif item.lower().endswith(VIDEO_SUFFIXES):
            raise InputError(item, "is a video; give the folder or prefix of its pose tables (the --out of "
                                   "analyze/infer)")
        else:
            metas += [m for m in storage.list_files(item, suffixes=("_meta.json",)) if "/.posecluster/" not in m]
    results = []
    for meta_uri in dict.fromkeys(metas):
        try:
            meta = json.loads(storage.read_bytes(meta_uri))
            model = meta["model"]["uri"] if isinstance(meta["model"], dict) else meta["model"]
            results.append(AnalysisRecord(video=meta["video"], table=meta["outputs"]["h5"], model=model, meta=meta_uri))
        except FileNotFoundError:
            raise InputError(meta_uri, "missing: pose tables are found through the _meta.json that analyze/infer "
                                       "write beside them") from None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InputError(meta_uri, f"not a posecluster analysis record ({exc})") from None
    return results
