"""The Python entry points; the CLI only parses arguments and calls these."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field, replace

import yaml

from posecluster import storage
from posecluster.analysis.filtering import FilterOptions
from posecluster.analysis.outliers import OutlierOptions
from posecluster.config import InferConfig, PoseclusterConfig, deep_merge, load_yaml
from posecluster.data.formats.dlc import read_project_config
from posecluster.data.formats.madlc import read_tracks
from posecluster.data.multianimal import AnimalTracks
from posecluster.data.project import read_project
from posecluster.data.video import find_videos
from posecluster.errors import PER_INPUT_ERRORS, InputError
from posecluster.infer.analyze import AnalysisResult, analyze_video
from posecluster.infer.ensemble import EnsemblePredictor, analyze_ensemble_video, load_predictor
from posecluster.infer.ensemble_tables import VARIANCE_SUFFIX
from posecluster.infer.multianimal_analyze import analyze_animals_video
from posecluster.infer.multianimal_predictor import MultiAnimalPredictor
from posecluster.infer.naming import (Destfolder, Mirrored, collisions, filtered_table, labeled_record, labeled_video_uri,
                                      plot_folder, plots_record)
from posecluster.infer.results import (checked_filtered, checked_table, find_results, forget_filtered, forget_source,
                                       record_filtered, record_source, require_video)
from posecluster.labeling.animal_folder_table import (
    AnimalFolderTable, read_animal_folder_table, save_animal_folder_table,
)
from posecluster.labeling.extract import ExtractOptions, check_video_sets, extract_video, register_videos
from posecluster.labeling.folder_table import FolderTable, read_folder_table, save_folder_table
from posecluster.labeling.merge import MergeReport, merge
from posecluster.labeling.table_kinds import read_table
from posecluster.model.ensemble import is_ensemble, member_uris
from posecluster.model.export import ExportOptions, ExportReport, export_model
from posecluster.storage.scope import check as check_scope
from posecluster.train.calibrate import calibrate_run as calibrate_model
from posecluster.train.checkpoint import TrainedModel, UriCheckpointStore, load_model
from posecluster.train.evaluate import Evaluation, evaluate
from posecluster.train.loop import TrainResult, train
from posecluster.viz.labeled_video import LabelOptions

log = logging.getLogger(__name__)


def parse_overrides(pairs: list[str]) -> dict:
    """["train.epochs=5", "model.backbone.name=resnet18"] -> nested dict. Values are YAML (numbers, lists,
    mappings) read as config files are (config.load_yaml): `infer.mixed_precision=off` stays the word
    "off", which the field's type then reads (a bool field takes off/on/yes/no as booleans)."""
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} must look like section.field=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        try:
            node[leaf] = load_yaml(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"override {pair!r}: the value is not valid YAML ({exc})") from None
    return out


def resolve_config(project_uri: str, config_uri: str | None = None, overrides: dict | None = None) -> PoseclusterConfig:
    """Defaults (or a posecluster YAML), with the DLC project's own settings and then the overrides."""
    config = PoseclusterConfig.load(config_uri) if config_uri else PoseclusterConfig()
    project = read_project_config(storage.join(project_uri, "config.yaml"))
    fraction = project.training_fractions[0] if project.training_fractions else config.split.training_fraction
    config = config.model_copy(update={"project": project, "project_uri": project_uri})
    config = config.with_overrides({"split": {"training_fraction": fraction}},
                                   source=storage.join(project_uri, "config.yaml"))
    return config.with_overrides(overrides or {}, source="--set")


def infer_overrides(config_uri: str | None, overrides: dict) -> dict:
    """Overrides of a model's `infer` section: a config file's infer section (only the keys it sets),
    then `overrides["infer"]`. Other sections are refused: they describe training, not analysis."""
    unknown = set(overrides) - {"infer"}
    if unknown:
        raise ValueError(f"analysis takes only infer.* overrides, not {sorted(unknown)}")
    merged: dict = {}
    if config_uri:
        try:
            raw = load_yaml(storage.read_bytes(config_uri)) or {}
        except yaml.YAMLError as exc:
            raise InputError(config_uri, f"not valid YAML: {exc}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("infer", {}), dict):
            raise ValueError(f"{config_uri}: expected a mapping with an `infer` mapping")
        merged = deep_merge(merged, raw.get("infer", {}))
    merged = deep_merge(merged, overrides.get("infer", {}))
    source = "--set" if not config_uri else f"{config_uri} and --set"
    typed = InferConfig().with_overrides(merged, source).model_dump(mode="json")  # names and values checked now
    return _as_set(typed, merged)  # each value as its field reads it ("on", never True)


def _as_set(typed: dict, given: dict) -> dict:
    """`typed`'s values for the keys `given` sets, nested sections included (infer.tracking.enter_px alone
    must not carry tracking's other defaults over the model's own settings)."""
    return {key: _as_set(typed[key], value) if isinstance(value, dict) and isinstance(typed[key], dict) else typed[key]
            for key, value in given.items()}


def train_project(project_uri: str, run_uri: str, config: PoseclusterConfig, resume: bool = False,
                  workers: int = 1, gpus_per_worker: float = 0.0, cpus_per_worker: float = 1.0) -> TrainResult:
    """Train on one process, or data-parallel on Ray Train when workers > 1.

    A run folder that already has checkpoints is continued only with resume=True, so a typo in --out
    never silently mixes two experiments.
    """
    existing = UriCheckpointStore(run_uri).epochs()
    if existing and not resume:
        raise ValueError(f"{run_uri} already has checkpoints up to epoch {existing[-1][0]}; "
                         "pass --resume to continue it or choose another --out")
    if workers > 1:
        from posecluster.cluster.training import train_distributed

        return train_distributed(config, project_uri, run_uri, workers, gpus_per_worker, cpus_per_worker)
    project = read_project(project_uri)
    return train(config, project.labels, run_uri)


def train_ensemble(project_uri: str, out_uri: str, config: PoseclusterConfig, members: int,
                   vary_shuffles: bool = False, cpus_per_member: float = 1.0,
                   gpus_per_member: float = 0.0) -> list[dict]:
    """K members as parallel Ray trials into <out>/member-<k>/ plus <out>/ensemble.json (see
    posecluster.cluster.ensemble); returns the members' records."""
    if config.project.multianimal:
        raise InputError(storage.join(project_uri, "config.yaml"), "multi-animal models run in fp32 for now: "
                         "an ensemble is available for single-animal projects only")
    from posecluster.cluster.ensemble import train_ensemble as run

    if is_ensemble(out_uri) or UriCheckpointStore(storage.join(out_uri, "member-0")).epochs():
        raise ValueError(f"{out_uri} already holds an ensemble; choose another --out")
    return run(config, project_uri, out_uri, members, vary_shuffles, cpus_per_member, gpus_per_member)


def sweep(project_uri: str, out_uri: str, config: PoseclusterConfig, fractions: list[float],
          shuffles: list[int], cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0):
    """The learning-curve experiment (paper Fig. 2) as parallel trials on Ray."""
    from posecluster.cluster.sweep import run_sweep

    return run_sweep(config, project_uri, out_uri, fractions, shuffles, cpus_per_trial, gpus_per_trial)


def _trained_project(trained: TrainedModel, project_uri: str | None) -> str | None:
    """The project given, else the one model.pt names (checked against the job's scope, naming model.pt)."""
    if project_uri:
        return project_uri
    named = trained.config.project_uri
    if named:
        check_scope(named, "read", named_by=trained.uri)
    return named or None


def evaluate_run(run_uri: str, project_uri: str | None = None) -> Evaluation:
    trained = load_model(run_uri)
    project_uri = _trained_project(trained, project_uri)
    if not project_uri:
        raise ValueError(f"{run_uri}: say which project to evaluate on (--project)")
    return evaluate(run_uri, read_project(project_uri).labels)


def calibrate_run(run_uri: str, project_uri: str | None = None, images: int | None = None) -> TrainedModel:
    """Calibrate a trained run's int8 version and check bf16/int8 poses against fp32 on its project's
    labeled frames; model.pt is rewritten with them (training does this itself when it ends)."""
    trained = load_model(run_uri)
    project_uri = _trained_project(trained, project_uri)
    if not project_uri:
        raise ValueError(f"{run_uri}: say which project's labeled frames to calibrate on (--project)")
    return calibrate_model(run_uri, read_project(project_uri).labels, count=images)


def analyze(videos: list[str], model_uri: str, out_folder: str | None, formats: tuple[str, ...] = (),
            overrides: dict | None = None, progress: bool = True, layout: str = "mirror") -> list[AnalysisResult]:
    """One pose table per video; an ensemble folder (ensemble.json) gives the EKS track and its variance, a
    multi-animal model the tracked table of its individuals (DeepLabCut's `<video><scorer>_el.h5`).

    layout "mirror": the video's folder mirrored under `out_folder` (the archive layout); "dlc":
    DeepLabCut's destfolder layout, flat in `out_folder`, or beside each video when it is None."""
    if out_folder is None or layout == "dlc":
        place = Destfolder(out_folder)
    else:
        place = Mirrored(out_folder)
    predictor = load_predictor(model_uri, overrides)
    results = []
    found = find_videos(videos)
    clashes = collisions({v: place.base(v, predictor.scorer) for v in found})
    if clashes:
        video, earlier = next(iter(clashes.items()))
        raise InputError(video, f"would write the same pose table as {earlier} (same folder and file stem); "
                         "analyze them into different --out folders")
    for video in found:
        if isinstance(predictor, EnsemblePredictor):
            result = analyze_ensemble_video(predictor, video, place, formats=formats, progress=progress)
        elif isinstance(predictor, MultiAnimalPredictor):  # detected, tracked, stitched: `<video><scorer>_el.h5`
            result = analyze_animals_video(predictor, video, place, formats=formats, progress=progress)
        else:
            result = analyze_video(predictor, video, place, formats=formats, progress=progress)
        log.info("%s: %d frames at %.1f frames/s -> %s", result.video, result.frames, result.fps, result.outputs["h5"])
        results.append(result)
    return results


def infer_archive(inputs: list[str], options, on_progress=None):
    """Shard an archive over Ray (RAY_ADDRESS, or a local Ray): one pose table per video in options.out.

    `options` is a posecluster.cluster.archive.ArchiveOptions; returns its JobReport.
    """
    from posecluster.cluster.archive import run_archive

    return run_archive(inputs, options, on_progress)


def job_status(out: str, job: str | None = None, failures: int = 20) -> dict:
    """An archive job's summary (counts, frames, timings) plus up to `failures` failed videos and videos
    with missing frames, read from its manifest under `out` (the latest job unless `job` names one).
    Works while the job runs; never loads a whole 100,000-video manifest."""
    from posecluster.cluster.manifest import job_status as read_status

    return read_status(out, job, failures)


def find_jobs(root: str) -> list[tuple[str, str]]:
    """(output URI, job id) of every archive job under `root` (at any depth), newest first: one listing."""
    from posecluster.cluster.manifest import find_jobs as find

    return find(root)


def job_videos(out: str, job: str, status: str | None = None, offset: int = 0, limit: int = 100) -> list[dict]:
    """One page of job `job`'s per-video records under `out` (uri, status, frames, outputs, missing frame
    ranges, error), in the order the videos finished, of one status when `status` is given. Pages with
    the counts of `job_status(out, job, failures=0)`; never holds more than a page and one chunk."""
    from posecluster.cluster.manifest import read_records

    return read_records(out, job, status, offset, limit)


# --- the labeling loop (issue: extract frames, filter, outliers, merge, labeled videos, plots, export) ---


@dataclass
class Outcome:
    """One input's result in a batch command: what was written, or why it failed (others go on)."""

    source: str
    outputs: dict = field(default_factory=dict)
    error: str = ""


def _each(items) -> list[Outcome]:
    """Run (source, call) pairs: in this process for one input, else one Ray task per input (on the
    cluster in RAY_ADDRESS, or a local Ray). A failing input is reported and the others go on."""
    items = list(items)
    if len(items) > 1 or os.environ.get("RAY_ADDRESS"):
        from posecluster.cluster.tasks import run_each

        results = run_each([call for _, call in items])
        outcomes = [Outcome(source, outputs, error) for (source, _), (outputs, error) in zip(items, results)]
    else:
        outcomes = []
        for source, call in items:
            try:
                outcomes.append(Outcome(source, call()))
            except PER_INPUT_ERRORS as exc:
                outcomes.append(Outcome(source, error=str(exc)))
    for outcome in outcomes:
        if outcome.error:
            log.error("%s: %s", outcome.source, outcome.error)
    return outcomes


def extract_frames(inputs: list[str], project_uri: str, options: ExtractOptions) -> list[Outcome]:
    """Frames to label from each video into the project (one Ray task per video when there are several);
    config.yaml's video_sets is then updated once, here, so tasks never write the same file."""
    videos = find_videos(inputs)  # names what it looked at when there is no video
    check_video_sets(project_uri)  # before any frame is written
    outcomes = _each([(v, lambda v=v: asdict(extract_video(v, project_uri, options))) for v in videos])
    sizes = {o.source: (o.outputs["width"], o.outputs["height"]) for o in outcomes if not o.error}
    register_videos(project_uri, sizes)
    return outcomes


def sibling(table: str, suffix: str) -> str:
    """`<video><scorer>.h5` -> `<video><scorer><suffix>` beside it."""
    return table[: -len(".h5")] + suffix


def _table(record, filtered: bool) -> str:
    """The record's table once checked to be the one its meta describes, or its `_filtered` table once
    checked to be filtered from that table."""
    table = checked_table(record)
    return checked_filtered(table) if filtered else table


def filter_poses(inputs: list[str], options: FilterOptions, formats: tuple[str, ...] = ()) -> list[Outcome]:
    """`<video><scorer>_filtered.h5` (plus csv/parquet) beside each pose table found in `inputs`, with a
    record of the table they came from (`_filtered_source.json`); formats not asked now are removed."""
    def run(record):
        track, kind = read_table(checked_table(record))
        refused = [fmt for fmt in formats if fmt not in kind.formats]
        if refused:
            raise InputError(record.table, f"a {kind.name} table's filtered table is written as .h5 or "
                                           f"{', '.join(kind.formats)}, not {', '.join(refused)}")
        track = kind.filter(track, options)
        out = {"h5": filtered_table(record.table)}
        out.update({fmt: sibling(out["h5"], f".{fmt}") for fmt in formats})
        forget_filtered(record.table)
        for fmt in ("csv", "parquet"):
            if fmt not in out and storage.exists(sibling(out["h5"], f".{fmt}")):
                storage.remove(sibling(out["h5"], f".{fmt}"))  # an earlier filtering's, of other poses
        for uri in out.values():
            kind.write(track, uri)
        record_filtered(record.table, out, asdict(options))
        return out

    return _each([(r.table, lambda r=r: run(r)) for r in find_results(inputs)])


def extract_outlier_frames(inputs: list[str], project_uri: str, options: OutlierOptions, n: int = 20,
                           filtered: bool = False, seed: int = 0, videos: list[str] | None = None) -> list[Outcome]:
    def run(record):
        video, table = require_video(record), _table(record, filtered)
        track, kind = read_table(table)
        found = kind.outliers(video, table, track, project_uri, options, n, seed,
                              variance_uri=sibling(record.table, VARIANCE_SUFFIX))
        return {"candidates": found.candidates, "frames": found.indices, "new_images": found.new_images,
                "reasons": found.reasons}

    return _each([(r.video, lambda r=r: run(r)) for r in find_results(inputs, videos)])


def merge_labels(project_uri: str, refined_only: bool = False) -> MergeReport:
    return merge(project_uri, refined_only)


def folder_table(project_uri: str, folder: str) -> FolderTable:
    """A labeled-data folder for a labeling tool: its frames, labels, machine labels, proposals, version."""
    return read_folder_table(project_uri, folder)


def save_labels(project_uri: str, folder: str, keypoints: dict[str, list], version: str) -> str:
    """Save labels into the folder's CollectedData table if it is still at `version` (else TableConflict)."""
    return save_folder_table(project_uri, folder, keypoints, version)


def animal_folder_table(project_uri: str, folder: str) -> AnimalFolderTable:
    """A multi-animal project's labeled-data folder for a labeling tool: frames, labels per slot, version."""
    return read_animal_folder_table(project_uri, folder)


def save_animal_labels(project_uri: str, folder: str, keypoints: dict[str, list], version: str) -> str:
    """Save a multi-animal folder's labels ({image: flat list in animal_slots order}) if the table is still
    at `version` (else TableConflict)."""
    return save_animal_folder_table(project_uri, folder, keypoints, version)


def read_animal_tracks(table_uri: str) -> AnimalTracks:
    """A multi-animal tracked pose table (`_el.h5` and the like) as AnimalTracks."""
    return read_tracks(table_uri)


def video_frame_png(video_uri: str, index: int) -> bytes:
    """PNG of frame `index` of a video (the numbering every command keeps), nothing drawn on it."""
    import io

    from PIL import Image

    from posecluster.data.video import DecodeReport, probe, read_frames

    info = probe(video_uri)
    if not 0 <= index < info.frame_count:
        raise InputError(video_uri, f"frame {index} is outside the video's {info.frame_count} frames")
    frames = list(read_frames(info, index, index + 1, DecodeReport()))
    if not frames:
        raise InputError(video_uri, "could not be decoded", frame=index)
    buffer = io.BytesIO()
    Image.fromarray(frames[0][1]).save(buffer, format="PNG")
    return buffer.getvalue()


def _project_settings(records) -> dict:
    """{model URI: (pcutoff, skeleton) of its training project}, each model read once here in the driver
    rather than once per video task; a model that cannot be read fails its videos alone (as the error)."""
    settings: dict = {}
    for uri in dict.fromkeys(r.model for r in records):
        try:
            project = load_model(member_uris(uri)[0] if is_ensemble(uri) else uri).config.project
            settings[uri] = (project.pcutoff, tuple(tuple(pair) for pair in project.skeleton))
        except PER_INPUT_ERRORS as exc:
            settings[uri] = exc
    return settings


def _settings_of(settings: dict, model_uri: str) -> tuple[float, tuple]:
    found = settings[model_uri]
    if isinstance(found, Exception):
        raise found
    return found


def label_videos(inputs: list[str], out_folder: str, options: LabelOptions, draw_skeleton: bool = False,
                 pcutoff: float | None = None, filtered: bool = False,
                 videos: list[str] | None = None) -> list[Outcome]:
    """`<video><scorer>_labeled.mp4` per analysed video; p-cutoff and skeleton default to the project's."""
    records = find_results(inputs, videos)
    settings = _project_settings(records) if pcutoff is None or draw_skeleton else {}
    named = {r.table: filtered_table(r.table) if filtered else r.table for r in records}  # checked when drawn
    targets = {named[r.table]: labeled_video_uri(r.video, named[r.table], out_folder) for r in records}
    clashes = collisions(targets)

    def run(record):
        project_pcutoff, skeleton = _settings_of(settings, record.model) if settings else (pcutoff, ())
        chosen = replace(options, pcutoff=project_pcutoff if pcutoff is None else pcutoff,
                         skeleton=skeleton if draw_skeleton else ())
        video, table = require_video(record), _table(record, filtered)
        track, kind = read_table(table)
        forget_source(labeled_record(targets[table]))
        labeled = kind.label_video(video, track, targets[table], chosen)
        record_source(labeled_record(targets[table]), table, record, "posecluster label-video")
        return {"video": labeled.uri, "frames": labeled.frames, "missing_frames": labeled.missing_frames,
                "notes": labeled.notes}

    def refuse(table):  # never overwrite another table's labeled video
        raise InputError(table, f"would write the same labeled video as {clashes[table]}")

    return _each([(r.video, (lambda r=r: refuse(named[r.table])) if named[r.table] in clashes
                   else (lambda r=r: run(r))) for r in records])


def plot_poses(inputs: list[str], out_folder: str, pcutoff: float | None = None, filtered: bool = False) -> list[Outcome]:
    """DLC's plot-poses/<video>/ PNGs for each analysed video."""
    records = find_results(inputs)
    settings = _project_settings(records) if pcutoff is None else {}
    folders = {r.table: plot_folder(r.video, out_folder) for r in records}

    def run(record):
        cutoff = _settings_of(settings, record.model)[0] if pcutoff is None else pcutoff
        folder = folders[record.table]
        table = _table(record, filtered)
        track, kind = read_table(table)
        forget_source(plots_record(folder))
        plots = kind.plot(track, folder, cutoff, title=storage.stem(record.video))
        record_source(plots_record(folder), table, record, "posecluster plot")
        return plots

    return _each([(r.video, lambda r=r: run(r)) for r in records])


def pose_frame_image(table_uri: str, video_uri: str, index: int, pcutoff: float) -> bytes:
    """PNG of one video frame with the table's poses drawn (parts below `pcutoff` hidden), as label-video draws them."""
    import io

    from PIL import Image

    from posecluster.data.video import DecodeReport, probe, read_frames
    from posecluster.errors import InputError
    track, kind = read_table(table_uri)
    if not 0 <= index < len(track):
        raise InputError(table_uri, f"frame {index} is outside the table's {len(track)} frames")
    info = probe(video_uri)
    frames = list(read_frames(info, index, index + 1, DecodeReport()))
    if not frames:
        raise InputError(video_uri, "could not be decoded", frame=index)
    drawn = kind.labeler(track, LabelOptions(pcutoff=pcutoff), info.width, info.height).draw(frames[0][1], index)
    buffer = io.BytesIO()
    Image.fromarray(drawn).save(buffer, format="PNG")
    return buffer.getvalue()


def trajectory_image(table_uri: str, pcutoff: float, title: str = "") -> bytes:
    """PNG of the trajectory plot that `posecluster plot` writes, for one pose table."""
    track, kind = read_table(table_uri)
    return kind.trajectory_png(track, pcutoff, title)


def export_detector(run_uri: str, out_folder: str, options: ExportOptions) -> ExportReport:
    return export_model(run_uri, out_folder, options)


# --- work the web app starts on a cluster: Ray's Job Submission API ---


def job_submission(address: str, token: str | None = None):
    """A client of Ray's Job Submission API on the cluster whose dashboard is at `address`
    (http://head:8265): submit a posecluster command as a Ray job, list, read logs, stop
    (posecluster.cluster.submission.RayJobs). `token`: Ray's auth token when the cluster has one."""
    from posecluster.cluster.submission import RayJobs

    return RayJobs(address, token)


def start_local_ray(num_cpus: int = 2):
    """A private Ray head on this machine (its own temp dir, free ports, a fresh token), ready for jobs:
    what the web app submits to when it serves a local folder without a cluster. Stop it with .stop()."""
    from posecluster.cluster.submission import LocalRayHead

    return LocalRayHead(num_cpus=num_cpus).wait_ready()
