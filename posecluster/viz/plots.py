"""DLC's plot_trajectories for one pose table: trajectory, x/y over time, likelihood over time and a
histogram of frame-to-frame jumps, as PNGs. Figures are built without pyplot (no global state)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from posecluster import storage
from posecluster.data.multianimal import AnimalTracks
from posecluster.data.tracks import PoseTrack
from posecluster.viz.colors import bodypart_colors

PLOTS = ("trajectory.png", "plot.png", "plot-likelihood.png", "hist.png")


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _save(figure: Figure, uri: str) -> str:
    storage.atomic_write_bytes(uri, _png(figure))
    return uri


def plot_track(track: PoseTrack, out_folder: str, pcutoff: float = 0.6, title: str = "",
               colormap: str = "rainbow", suffix: str = "") -> dict[str, str]:
    """Write the four plots into `out_folder` (`trajectory<suffix>.png`, ...); returns {name: uri}."""
    colors = bodypart_colors(len(track.bodyparts), colormap) / 255.0
    xy = track.xy.copy()
    xy[track.likelihood < pcutoff] = np.nan  # as DLC: only confident points are plotted
    frames = np.arange(len(track))
    out = {}

    figure = Figure(figsize=(6, 6))
    ax = figure.add_subplot()
    for k, part in enumerate(track.bodyparts):
        ax.plot(xy[:, k, 0], xy[:, k, 1], ".", ms=3, color=colors[k], label=part)
    ax.invert_yaxis()  # image coordinates: y grows downwards
    ax.set(xlabel="x (px)", ylabel="y (px)", title=f"{title} trajectory (likelihood >= {pcutoff})", aspect="equal")
    ax.legend(loc="best", fontsize="small", markerscale=3)
    out[f"trajectory{suffix}.png"] = _save(figure, storage.join(out_folder, f"trajectory{suffix}.png"))

    figure = Figure(figsize=(10, 5))
    ax_x, ax_y = figure.subplots(2, 1, sharex=True)
    for k, part in enumerate(track.bodyparts):
        ax_x.plot(frames, xy[:, k, 0], color=colors[k], lw=1, label=part)
        ax_y.plot(frames, xy[:, k, 1], color=colors[k], lw=1)
    ax_x.set(ylabel="x (px)", title=f"{title} position over time")
    ax_y.set(xlabel="frame", ylabel="y (px)")
    ax_x.legend(loc="upper right", fontsize="small")
    out[f"plot{suffix}.png"] = _save(figure, storage.join(out_folder, f"plot{suffix}.png"))

    figure = Figure(figsize=(10, 3.5))
    ax = figure.add_subplot()
    for k, part in enumerate(track.bodyparts):
        ax.plot(frames, track.likelihood[:, k], color=colors[k], lw=1, label=part)
    ax.axhline(pcutoff, color="k", ls="--", lw=1, label="p-cutoff")
    ax.set(xlabel="frame", ylabel="likelihood", ylim=(-0.02, 1.02), title=f"{title} likelihood over time")
    ax.legend(loc="lower right", fontsize="small")
    out[f"plot-likelihood{suffix}.png"] = _save(figure, storage.join(out_folder, f"plot-likelihood{suffix}.png"))

    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    jumps = np.linalg.norm(np.diff(xy, axis=0), axis=2)
    for k, part in enumerate(track.bodyparts):
        values = jumps[:, k][~np.isnan(jumps[:, k])]
        if len(values):
            ax.hist(values, bins=50, histtype="step", color=colors[k], label=part)
    ax.set(xlabel="frame-to-frame displacement (px)", ylabel="count", yscale="log",
           title=f"{title} jumps (likelihood >= {pcutoff})")
    ax.legend(loc="upper right", fontsize="small")
    out[f"hist{suffix}.png"] = _save(figure, storage.join(out_folder, f"hist{suffix}.png"))
    return out


def plot_animals(tracks: AnimalTracks, out_folder: str, pcutoff: float = 0.6, title: str = "",
                 colormap: str = "rainbow") -> dict[str, str]:
    """DeepLabCut's plots of a multi-animal table: the four plots per individual, and for the unique body
    parts under "single", named by it (`trajectory<individual>.png`, ...); returns {name: uri}."""
    out = {}
    for name, track in tracks.per_animal().items():
        out.update(plot_track(track, out_folder, pcutoff, f"{title} {name}".strip(), colormap, suffix=name))
    return out


def animals_trajectory_png(tracks: AnimalTracks, pcutoff: float = 0.6, title: str = "",
                           colormap: str = "rainbow") -> bytes:
    """One trajectory plot of every animal, a colour per individual (as labeled videos colour them)."""
    tracks_by_name = tracks.per_animal()
    colors = bodypart_colors(len(tracks_by_name), colormap) / 255.0
    figure = Figure(figsize=(6, 6))
    ax = figure.add_subplot()
    for color, (name, track) in zip(colors, tracks_by_name.items()):
        xy = track.xy.copy()
        xy[track.likelihood < pcutoff] = np.nan
        ax.plot(xy[..., 0].ravel(), xy[..., 1].ravel(), ".", ms=3, color=color, label=name)
    ax.invert_yaxis()
    ax.set(xlabel="x (px)", ylabel="y (px)", title=f"{title} trajectories (likelihood >= {pcutoff})", aspect="equal")
    ax.legend(loc="best", fontsize="small", markerscale=3)
    return _png(figure)
