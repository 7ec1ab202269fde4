"""Commands of the labeling loop: extract-frames, filter, outliers, merge, label-video, plot, export."""

from __future__ import annotations

import argparse


def _report(outcomes, describe) -> int:
    """One line per input, the failures last; exit code 1 when any input failed."""
    for outcome in outcomes:
        if not outcome.error:
            print(f"{outcome.source}: {describe(outcome.outputs)}")
    for outcome in outcomes:
        if outcome.error:
            print(f"  FAILED {outcome.source}: {outcome.error}")
    return 1 if any(o.error for o in outcomes) else 0


def cmd_extract_frames(args) -> int:
    from posecluster import api
    from posecluster.labeling.extract import ExtractOptions

    options = ExtractOptions(method=args.method, n=args.n, start=args.start, stop=args.stop, seed=args.seed)
    outcomes = api.extract_frames(args.videos, args.project, options)
    return _report(outcomes, lambda out: f"{len(out['indices'])} frames {out['indices']} -> {out['folder']} "
                                         f"({len(out['new_images'])} new)")


def cmd_filter(args) -> int:
    from posecluster import api
    from posecluster.analysis.filtering import FilterOptions

    options = FilterOptions(method=args.method, window=args.window, p_bound=args.p_bound, max_gap=args.max_gap,
                            ar_degree=args.ar_degree, ma_degree=args.ma_degree)
    outcomes = api.filter_poses(args.poses, options, tuple(args.format))
    return _report(outcomes, lambda out: f"-> {out['h5']}")


def cmd_outliers(args) -> int:
    from posecluster import api
    from posecluster.analysis.outliers import OutlierOptions

    options = OutlierOptions(algorithms=tuple(args.algorithm or ("jump", "uncertain")), epsilon=args.epsilon,
                             p_bound=args.p_bound, ensemble_std_px=args.ensemble_std)
    outcomes = api.extract_outlier_frames(args.poses, args.project, options, n=args.n, filtered=args.filtered,
                                          seed=args.seed, videos=args.video)
    return _report(outcomes, lambda out: f"{out['candidates']} candidate frames, {len(out['frames'])} written "
                                         f"for labeling: {out['frames']}")


def cmd_merge(args) -> int:
    from posecluster import api

    report = api.merge_labels(args.project, refined_only=args.refined_only)
    for folder in report.folders:
        print(f"{folder.folder}: {folder.proposed} proposed, {folder.corrected} corrected, "
              f"{folder.accepted} accepted as predicted, {folder.dropped} dropped")
    print(f"iteration {report.iteration}: {report.rows} new labeled frames; retrain with `posecluster train`")
    return 0


def cmd_label_video(args) -> int:
    from posecluster import api
    from posecluster.viz.labeled_video import LabelOptions

    options = LabelOptions(radius=args.radius, trail=args.trail, colormap=args.colormap)
    outcomes = api.label_videos(args.poses, args.out, options, draw_skeleton=args.skeleton, pcutoff=args.pcutoff,
                                filtered=args.filtered, videos=args.video)
    return _report(outcomes, lambda out: f"{out['frames']} frames -> {out['video']}")


def cmd_plot(args) -> int:
    from posecluster import api

    outcomes = api.plot_poses(args.poses, args.out, pcutoff=args.pcutoff, filtered=args.filtered)
    return _report(outcomes, lambda out: f"-> {', '.join(out.values())}")


def cmd_export(args) -> int:
    from posecluster import api
    from posecluster.model.export import ExportOptions

    report = api.export_detector(args.run, args.out, ExportOptions(formats=tuple(args.format or ()) or None,
                                                                   height=args.height, width=args.width))
    for fmt, difference in report.max_abs_difference.items():
        print(f"{fmt}: {report.files[fmt]} (max |difference| from PyTorch {difference:.2e}, "
              f"outputs span {report.output_range:.2f})")
    print(f"metadata: {report.files['metadata']}")
    return 0


def _poses_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("poses", nargs="+", help="pose-table folders/prefixes (the --out of analyze/infer), "
                                                 "or tables (.h5) / their _meta.json")


def _video_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", action="append", help="a video that moved since the analysis (repeatable): "
                                                         "replaces the recorded video with the same file name")


def add_commands(commands) -> None:
    extract = commands.add_parser("extract-frames", help="pick frames to label from videos into a DLC project")
    extract.add_argument("videos", nargs="+", help="video URIs, folders/prefixes, or .txt lists")
    extract.add_argument("--project", required=True, help="DeepLabCut project URI (config.yaml)")
    extract.add_argument("--method", choices=["kmeans", "uniform"], default="kmeans")
    extract.add_argument("--n", type=int, default=20, help="frames per video (DLC's numframes2pick)")
    extract.add_argument("--start", type=float, default=0.0, help="start of the range, as a fraction of the video")
    extract.add_argument("--stop", type=float, default=1.0, help="end of the range, as a fraction of the video")
    extract.add_argument("--seed", type=int, default=0)
    extract.set_defaults(func=cmd_extract_frames)

    filt = commands.add_parser("filter", help="smooth pose tables: median, spline gap filling, ARIMA")
    _poses_argument(filt)
    filt.add_argument("--method", choices=["median", "spline", "arima"], default="median")
    filt.add_argument("--window", type=int, default=5, help="median window (frames, odd)")
    filt.add_argument("--p-bound", type=float, default=0.01, help="spline/arima: likelihood below = missing")
    filt.add_argument("--max-gap", type=int, default=0, help="spline: longest gap to fill in frames (0: any)")
    filt.add_argument("--ar-degree", type=int, default=3)
    filt.add_argument("--ma-degree", type=int, default=1)
    filt.add_argument("--format", action="append", default=[], choices=["csv", "parquet"])
    filt.set_defaults(func=cmd_filter)

    outliers = commands.add_parser("outliers", help="frames the network got wrong, into the project for labeling")
    _poses_argument(outliers)
    outliers.add_argument("--project", required=True, help="DeepLabCut project URI")
    outliers.add_argument("--algorithm", action="append", choices=["jump", "uncertain", "fitting", "ensemble"],
                          help="repeatable; default: jump and uncertain; ensemble: frames where an ensemble's "
                               "members disagree (needs tables analyzed with an ensemble model)")
    outliers.add_argument("--epsilon", type=float, default=20.0, help="jump/fitting threshold in pixels")
    outliers.add_argument("--ensemble-std", type=float, default=5.0,
                          help="ensemble: flag a frame when some part's members' spread exceeds this (px)")
    outliers.add_argument("--p-bound", type=float, default=0.01, help="likelihood below which a part is uncertain")
    outliers.add_argument("--n", type=int, default=20, help="at most this many frames per video (k-means)")
    outliers.add_argument("--filtered", action="store_true", help="use the _filtered.h5 tables")
    outliers.add_argument("--seed", type=int, default=0)
    _video_argument(outliers)
    outliers.set_defaults(func=cmd_outliers)

    merge = commands.add_parser("merge", help="add refined outlier labels to the dataset as a new iteration")
    merge.add_argument("project", help="DeepLabCut project URI")
    merge.add_argument("--refined-only", action="store_true",
                       help="drop outlier frames whose proposed labels nobody changed")
    merge.set_defaults(func=cmd_merge)

    label = commands.add_parser("label-video", help="videos with the body parts drawn, written to storage")
    _poses_argument(label)
    label.add_argument("--out", required=True, help="folder URI for <video><scorer>_labeled.mp4")
    label.add_argument("--pcutoff", type=float, help="hide parts below this likelihood (default: the project's)")
    label.add_argument("--skeleton", action="store_true", help="draw the project's skeleton")
    label.add_argument("--trail", type=int, default=0, help="also draw each part's last N positions")
    label.add_argument("--radius", type=int, default=0, help="marker radius in pixels (0: 1%% of the diagonal)")
    label.add_argument("--colormap", default="rainbow")
    label.add_argument("--filtered", action="store_true", help="draw the _filtered.h5 tables")
    _video_argument(label)
    label.set_defaults(func=cmd_label_video)

    plot = commands.add_parser("plot", help="trajectory, x/y and likelihood over time, jump histogram (PNGs)")
    _poses_argument(plot)
    plot.add_argument("--out", required=True, help="folder URI; plots go to plot-poses/<video>/")
    plot.add_argument("--pcutoff", type=float, help="plot only points at least this likely (default: the project's)")
    plot.add_argument("--filtered", action="store_true")
    plot.set_defaults(func=cmd_plot)

    export = commands.add_parser("export", help="the trained detector as TorchScript and ONNX, checked")
    export.add_argument("run", help="run folder or model.pt URI")
    export.add_argument("--out", required=True, help="folder URI for model.torchscript.pt, model.onnx, model.int8.onnx, export.json")
    export.add_argument("--format", action="append", choices=["torchscript", "onnx", "onnx-int8"],
                        help="default: torchscript and onnx, and onnx-int8 (model.int8.onnx, the calibrated "
                             "int8 graph analyze runs) when the model carries one")
    export.add_argument("--height", type=int, default=256, help="example input height (any size works later)")
    export.add_argument("--width", type=int, default=256)
    export.set_defaults(func=cmd_export)
