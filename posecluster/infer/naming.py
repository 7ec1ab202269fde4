"""Output names: the one owner of where each command writes what it makes from a video or a pose table.

DeepLabCut names outputs by file stem (`<video stem><scorer>.h5`). Inputs are found recursively, so two
videos with one file name (day1/mouse.mp4, day2/mouse.mp4) would write the same object; every command
therefore keeps each input's folder relative to the inputs' common folder: `<out>/day1/mouse<scorer>.h5`.
A single input, or inputs from one folder, keep DeepLabCut's flat names.
"""

from __future__ import annotations

from posecluster import storage


def relative_names(uris: list[str]) -> dict[str, str]:
    """Each URI's path relative to the common folder of all of them (day1/a.mp4, day2/a.mp4)."""
    folders = [storage.parent(u).rstrip("/") + "/" for u in uris]
    common = folders[0] if folders else ""
    for folder in folders[1:]:
        while not folder.startswith(common):
            common = common[: common.rstrip("/").rfind("/") + 1]
    return {u: u[len(common):] for u in uris}


def relative_folder(relative: str) -> str:
    """'day1/mouse.mp4' -> 'day1'; 'mouse.mp4' -> ''."""
    return relative.rsplit("/", 1)[0] if "/" in relative else ""


def _in(out_folder: str, folder: str, name: str) -> str:
    return storage.join(out_folder, folder, name) if folder else storage.join(out_folder, name)


def output_base(video_uri: str, out_folder: str, scorer: str, relative: str | None = None) -> str:
    """`<out>/<relative folder>/<video stem><scorer>`: the pose table's URI without its suffix."""
    return _in(out_folder, relative_folder(relative or ""), f"{storage.stem(video_uri)}{scorer}")


def collisions(bases: dict[str, str]) -> dict[str, str]:
    """Videos whose output base another video already has (day1/mouse.mp4 and day1/mouse.avi): each such
    video -> the earlier video it would overwrite. Outputs must never silently replace each other."""
    first: dict[str, str] = {}
    clashes: dict[str, str] = {}
    for video, base in bases.items():
        if base in first:
            clashes[video] = first[base]
        else:
            first[base] = video
    return clashes


def output_bases(videos: list[str], out_folder: str, scorer: str) -> dict[str, str]:
    """output_base for each of a command's videos, folders taken relative to their common folder."""
    names = relative_names(videos)
    return {video: output_base(video, out_folder, scorer, names[video]) for video in videos}


def labeled_video_uris(tables: list[str], out_folder: str) -> dict[str, str]:
    """`<out>/<relative folder>/<table stem>_labeled.mp4` for each pose table (`<video><scorer>[_filtered].h5`)."""
    names = relative_names(tables)
    return {t: _in(out_folder, relative_folder(names[t]), f"{storage.stem(t)}_labeled.mp4") for t in tables}


def plot_folders(videos_by_table: dict[str, str], out_folder: str) -> dict[str, str]:
    """DeepLabCut's `<out>/plot-poses/<video stem>/`, under the table's relative folder when there are several."""
    names = relative_names(list(videos_by_table))
    return {table: _in(storage.join(out_folder, "plot-poses"), relative_folder(names[table]), storage.stem(video))
            for table, video in videos_by_table.items()}
