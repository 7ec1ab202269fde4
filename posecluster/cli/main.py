"""`posecluster` command line: each command parses its arguments and calls posecluster.api, nothing more."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from posecluster import __version__, storage
from posecluster.cli.labeling import add_commands as add_labeling_commands
from posecluster.storage.scope import Scope, confined

DESCRIPTION = """\
DeepLabCut-style markerless pose estimation as a batch system on object storage.
Every location is a URI: a local path, file:///..., or s3://bucket/key (endpoint and credentials from
AWS_ENDPOINT_URL / AWS_* in the environment).

  posecluster demo                          render data, train, evaluate and analyze on this machine
                                            (--animals 3: a rendered multi-animal project, trained + evaluated)
  posecluster train PROJECT --out RUN       train the part detector on a DeepLabCut project
                                            (--workers N: data-parallel on Ray Train;
                                             --ensemble K: K members as parallel Ray trials)
  posecluster sweep PROJECT --out FOLDER    learning curve over training fractions x shuffles
  posecluster evaluate RUN                  pixel errors on the run's train/test split, per body part
  posecluster calibrate RUN                 int8 version + bf16/int8 pose checks into model.pt (training
                                            does it when it ends; for models trained before)
  posecluster analyze VIDEO... --model RUN [--out FOLDER [--layout dlc]]
                                            one DLC-compatible pose table per video, on this machine
                                            (without --out: beside each video, as DeepLabCut)
  posecluster infer ARCHIVE... --model RUN --out PREFIX
                                            the same over a whole archive, sharded on a Ray cluster
                                            (RAY_ADDRESS or inside `ray job submit`; else a local Ray)
  posecluster status PREFIX                 progress and failures of the latest archive job there

  The labeling loop (DeepLabCut's refinement cycle, over an archive):
  posecluster extract-frames VIDEO... --project P   frames to label (k-means or uniform), Ray over videos
  posecluster filter POSES...               median / spline / ARIMA -> <table>_filtered.h5
  posecluster outliers POSES... --project P frames where the network failed, predictions as initial labels
  posecluster merge PROJECT                 refined labels into the dataset, a new iteration
  posecluster label-video POSES... --out F  videos with the body parts drawn
  posecluster plot POSES... --out F         trajectory, x/y, likelihood, jump histogram PNGs
  posecluster export RUN --out F            TorchScript + ONNX, checked against PyTorch

  posecluster serve ROOT                    the web app: label, refine, start and watch jobs in the browser
                                            (ROOT: a local folder or s3:// prefix; prints a URL with a token;
                                             --access FILE: behind a facility's sign-in proxy, per-lab prefixes)

  posecluster download-weights resnet50     torchvision's ImageNet weights into TORCH_HOME (image builds)

  posecluster --confine PREFIX... COMMAND   any command confined to a lab's folders/prefixes
"""


def _add_metrics_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port while running")
    parser.add_argument("--pushgateway", help="push the final metrics to this Prometheus Pushgateway (host:port)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    # POSECLUSTER_CONFIG: how the Helm chart's ConfigMap reaches every command without editing entrypoints.
    parser.add_argument("--config", default=os.environ.get("POSECLUSTER_CONFIG") or None,
                        help="a posecluster YAML config URI (default: $POSECLUSTER_CONFIG, else the DeepLabCut "
                             "recipe); analyze/infer use its `infer` section over the model's")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override one config value, e.g. --set train.epochs=50 --set model.backbone.name=resnet18",
    )


def _add_video_options(parser: argparse.ArgumentParser, out_help: str, out_required: bool = True) -> None:
    """What analyze (one machine) and infer (a cluster) share: model, output place and formats."""
    parser.add_argument("--model", required=True, help="run folder or model.pt URI")
    parser.add_argument("--out", required=out_required, help=out_help)
    parser.add_argument("--format", action="append", default=[], choices=["csv", "parquet"],
                        help="also write this format besides the DLC .h5 (repeatable)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_options(parser)
    _add_metrics_options(parser)


def _infer_overrides(args) -> dict:
    """The `infer` section overrides for analyze/infer: --config's infer section, --set infer.*, --batch-size."""
    from posecluster import api

    overrides = api.infer_overrides(args.config, api.parse_overrides(args.overrides))
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    return overrides


def cmd_demo(args) -> int:
    if args.animals > 1:
        return _multianimal_demo(args)
    from posecluster.demo import run_demo

    epochs = args.epochs if args.epochs is not None else 30
    frames = args.labeled_frames if args.labeled_frames is not None else 48
    print(f"posecluster demo: rendering a project, training a ResNet-18 from scratch ({epochs} epochs), "
          f"evaluating and analyzing into {args.out}", flush=True)
    report = run_demo(args.out, labeled_frames=frames, epochs=epochs,
                      video_frames=args.video_frames, progress=not args.quiet)
    print("\n".join(report.lines()))
    return 0


def _multianimal_demo(args) -> int:
    from posecluster.demo_multianimal import run_multianimal_demo

    epochs = args.epochs if args.epochs is not None else 50
    frames = args.labeled_frames if args.labeled_frames is not None else 48
    print(f"posecluster demo: rendering a {args.animals}-animal project, training a bottom-up ResNet-18 from "
          f"scratch ({epochs} epochs) and evaluating it into {args.out}", flush=True)
    report = run_multianimal_demo(args.out, animals=args.animals, labeled_frames=frames, epochs=epochs,
                                  video_frames=args.video_frames, progress=not args.quiet)
    print("\n".join(report.lines()))
    return 0


def cmd_train(args) -> int:
    from posecluster import api

    overrides = api.parse_overrides(args.overrides)
    for key, value in (("epochs", args.epochs), ("batch_size", args.batch_size)):
        if value is not None:
            overrides.setdefault("train", {})[key] = value
    if args.backbone:
        overrides.setdefault("model", {}).setdefault("backbone", {})["name"] = args.backbone
    if args.weights:
        overrides.setdefault("model", {}).setdefault("backbone", {})["weights"] = args.weights
    config = api.resolve_config(args.project, args.config, overrides)
    if args.ensemble > 1:
        members = api.train_ensemble(args.project, args.out, config, args.ensemble, args.vary_shuffles,
                                     args.cpus_per_worker, args.gpus_per_worker)
        for k, member in enumerate(members):
            print(f"member {k} (seed {member['seed']}, shuffle {member['shuffle']}): test error "
                  f"{member['test_error_px']:.2f} px, train {member['train_error_px']:.2f} px")
        print(f"ensemble of {len(members)}: {args.out}/ensemble.json (analyze/infer take --model {args.out})")
        return 0
    result = api.train_project(args.project, args.out, config, resume=args.resume, workers=args.workers,
                               gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker)
    print(f"trained {result.epochs} epochs in {result.seconds:.0f} s ({result.images_per_second:.1f} images/s), "
          f"final loss {result.final_loss:.4f}; model: {result.model_uri}")
    if args.evaluate:
        print(api.evaluate_run(args.out, args.project).summary())
    return 0


def cmd_sweep(args) -> int:
    from posecluster import api

    config = api.resolve_config(args.project, args.config, api.parse_overrides(args.overrides))
    result = api.sweep(args.project, args.out, config, args.fractions, args.shuffles,
                       args.cpus_per_trial, args.gpus_per_trial)
    print(result.table[["training_fraction", "shuffle", "train_images", "train_error_px", "test_error_px"]]
          .to_string(index=False))
    print(f"table: {result.table_uri}; plot: {result.plot_uri}")
    return 0


def cmd_evaluate(args) -> int:
    from posecluster import api

    evaluation = api.evaluate_run(args.run, args.project)
    print(evaluation.summary())
    from posecluster.train.evaluate import pixels

    for part, errors in evaluation.per_bodypart.items():
        print(f"  {part:>12}: train {pixels(errors['train'], 'not labeled')}, "
              f"test {pixels(errors['test'], 'not labeled in test images')}")
    print(f"results: {evaluation.outputs['results_csv']}; plot: {evaluation.outputs['plot_png']}")
    return 0


def cmd_calibrate(args) -> int:
    from posecluster import api

    trained = api.calibrate_run(args.run, args.project, args.images)
    reduced = trained.reduced
    print(f"{trained.uri}: int8 graph sha256 {reduced.int8_sha256[:16]}... calibrated on "
          f"{reduced.calibration['frames']} labeled frames; model sha256 now {trained.sha256[:16]}...")
    for path, check in reduced.checks.items():
        print(f"  {path} vs fp32: {check.describe()}")
    return 0


def cmd_analyze(args) -> int:
    from posecluster import api

    results = api.analyze(args.videos, args.model, args.out, tuple(args.format), _infer_overrides(args),
                          progress=not args.quiet, layout=args.layout)
    failed = 0
    for result in results:
        note = f", {len(result.missing_frames)} frames missing (NaN rows, listed in _meta.json)" if result.missing_frames else ""
        print(f"{result.video}: {result.status}, {result.frames} frames, {result.fps:.1f} frames/s{note} -> {result.outputs['h5']}")
        for warning in result.warnings:
            print(f"  warning: {warning}")
        failed += bool(result.missing_frames)
    return 1 if failed else 0


def cmd_infer(args) -> int:
    from posecluster import api
    from posecluster.cluster.archive import ArchiveOptions, Patience

    options = ArchiveOptions(
        model=args.model, out=args.out, formats=tuple(args.format), workers=args.workers,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker,
        infer_overrides=_infer_overrides(args), segment_frames=args.segment_frames, overwrite=args.overwrite,
        max_retries=args.max_retries, progress=not args.quiet, small_video_bytes=int(args.small_video_mb * (1 << 20)),
        patience=Patience(storage_call_s=args.storage_patience, outage_s=args.outage_limit,
                          capacity_s=args.outage_limit),
    )
    report = api.infer_archive(args.inputs, options)
    counts = {s: sum(v.status == s for v in report.videos) for s in ("skipped", "failed", "done-with-warnings")}
    done = sum(v.done for v in report.videos)
    warned = f" ({counts['done-with-warnings']} with missing frames)" if counts["done-with-warnings"] else ""
    print(f"{len(report.videos)} videos: {done} done{warned}, {counts['skipped']} already done, "
          f"{counts['failed']} failed; {report.frames_computed} frames in {report.seconds:.0f} s "
          f"({report.fps:.1f} frames/s) on {report.workers} workers")
    for video in report.failed:
        print(f"  FAILED {storage.redact_uri(video.uri)}: {video.error}")
    if report.stop_reason:
        print(f"STOPPED: {report.stop_reason}")
    print(f"manifest: {report.manifest_uri} (posecluster status {args.out})")
    return 2 if report.stop_reason else 1 if report.failed else 0


def cmd_serve(args) -> int:
    from posecluster.serve.options import Listen, ServeOptions, exposure_warning

    listen = Listen(host=args.host, port=args.port, certfile=args.tls_certfile, keyfile=args.tls_keyfile,
                    allow_remote=args.allow_remote)
    exposure_warning(listen)  # a bad --host is refused before the app's imports
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"the web app needs the serve extra: pip install 'posecluster[serve]' ({exc})") from None
    from posecluster.serve import ProxyAccess, serve

    access = ProxyAccess.load(args.access) if args.access else None
    # Ray's token for the cluster the browser's jobs go to: from the environment (the chart's Secret), never argv.
    options = ServeOptions(access=access, allowed_hosts=tuple(args.allowed_host), secure_cookies=args.secure_cookies,
                           ray_address=args.ray_address, ray_token=os.environ.get("RAY_AUTH_TOKEN") or None)
    token = args.token or os.environ.get("POSECLUSTER_SERVE_TOKEN") or None
    serve(args.root, listen, token, options, local_ray=args.local_ray)
    return 0


def cmd_status(args) -> int:
    import json

    from posecluster import api
    from posecluster.cluster.manifest import format_status

    status = api.job_status(args.out, job=args.job, failures=args.failures)
    if args.json:
        print(json.dumps(status, indent=1, default=str))
    else:
        print("\n".join(format_status(status)))
    return 1 if status.get("counts", {}).get("failed") else 0


def cmd_download_weights(args) -> int:
    from posecluster.model.weights import download_imagenet

    for name in args.backbones:
        print(f"{name}: {download_imagenet(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posecluster", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"posecluster {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--confine", action="append", default=[], metavar="PREFIX",
                        help="run the command confined to these folders/prefixes (repeatable; before the command): "
                             "every read, list and write, wherever its location came from (a .txt list, model.pt, "
                             "ensemble.json, config.yaml), must lie under one; links are followed first. The web "
                             "app's jobs carry their lab's prefixes")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="the whole single-machine flow on rendered data (a few minutes on CPU)")
    demo.add_argument("--out", default="demo-output", help="where to write the project, model and poses")
    demo.add_argument("--epochs", type=int, help="default 30 (one animal), 50 (several)")
    demo.add_argument("--labeled-frames", type=int, help="default 48")
    demo.add_argument("--animals", type=int, default=1,
                      help="2 or more: a rendered multi-animal (maDLC) project, trained and evaluated")
    demo.add_argument("--video-frames", type=int, default=150)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    train = commands.add_parser("train", help="train the part detector on a DeepLabCut project")
    train.add_argument("project", help="DeepLabCut project URI (folder with config.yaml and labeled-data/)")
    train.add_argument("--out", required=True, help="run folder URI: checkpoints, config, split, model.pt")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--backbone", choices=["resnet18", "resnet34", "resnet50", "resnet101"])
    train.add_argument("--weights", help="'imagenet' (torchvision file under TORCH_HOME), 'none', or a state-dict URI")
    train.add_argument("--evaluate", action="store_true", help="evaluate on the split when training ends")
    train.add_argument("--resume", action="store_true", help="continue the run folder's last checkpoint")
    train.add_argument("--workers", type=int, default=1,
                       help="data-parallel workers on Ray Train (DDP); 1 trains in this process")
    train.add_argument("--ensemble", type=int, default=1, metavar="K",
                       help="train K members (seeds seed..seed+K-1) as parallel Ray trials into "
                            "OUT/member-<k>/ plus OUT/ensemble.json; 1 is an ordinary run")
    train.add_argument("--vary-shuffles", action="store_true",
                       help="with --ensemble: member k also uses split shuffle + k")
    train.add_argument("--gpus-per-worker", type=float, default=0.0)
    train.add_argument("--cpus-per-worker", type=float, default=1.0)
    _add_config_options(train)
    _add_metrics_options(train)
    train.set_defaults(func=cmd_train)

    sweep = commands.add_parser("sweep", help="learning curve: training fractions x shuffles as parallel Ray trials")
    sweep.add_argument("project", help="DeepLabCut project URI")
    sweep.add_argument("--out", required=True, help="folder URI: trials/, learning_curve.csv and .png")
    sweep.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.75, 0.95])
    sweep.add_argument("--shuffles", type=int, nargs="+", default=[1, 2, 3])
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0)
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0)
    _add_config_options(sweep)
    sweep.set_defaults(func=cmd_sweep)

    evaluate = commands.add_parser("evaluate", help="DLC-style pixel errors of a trained run")
    evaluate.add_argument("run", help="run folder URI written by `posecluster train`")
    evaluate.add_argument("--project", help="project URI (default: the one the run was trained on)")
    evaluate.set_defaults(func=cmd_evaluate)

    calibrate = commands.add_parser("calibrate", help="int8 version and reduced-precision pose checks of a run")
    calibrate.add_argument("run", help="run folder URI written by `posecluster train`")
    calibrate.add_argument("--project", help="project URI (default: the one the run was trained on)")
    calibrate.add_argument("--images", type=int, help="calibrate on up to this many training images "
                                                       "(default: train.int8_calibration_images, 64)")
    calibrate.set_defaults(func=cmd_calibrate)

    analyze = commands.add_parser("analyze", help="pose tables for videos on this machine (no cluster)")
    analyze.add_argument("videos", nargs="+", help="video URIs, folders/prefixes, or .txt lists of URIs")
    _add_video_options(analyze, "folder URI for the pose tables (default: beside each video, as DeepLabCut "
                                "writes them)", out_required=False)
    analyze.add_argument("--layout", choices=["mirror", "dlc"], default="mirror",
                         help="mirror: each video's folder mirrored under --out (the archive layout, the default "
                              "with --out); dlc: DeepLabCut's destfolder, every table flat in --out")
    analyze.set_defaults(func=cmd_analyze)

    infer = commands.add_parser("infer", help="pose tables for a whole archive, sharded over a Ray cluster")
    infer.add_argument("inputs", nargs="+", metavar="ARCHIVE",
                       help="a prefix/folder of videos, video URIs, or .txt lists of URIs")
    _add_video_options(infer, "prefix for pose tables, manifests and resumable state")
    infer.add_argument("--workers", type=int, help="actors to start (default: as many as the cluster holds)")
    infer.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per actor (0: CPU inference)")
    infer.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per actor (threads for torch)")
    infer.add_argument("--segment-frames", type=int, default=1000,
                       help="frames per segment (cut at the next keyframe); long videos spread over workers")
    infer.add_argument("--overwrite", action="store_true", help="recompute even what is already done")
    infer.add_argument("--max-retries", type=int, default=2,
                       help="retries of a segment whose worker died running it (a lost node does not count)")
    infer.add_argument("--outage-limit", type=float, default=3600.0, metavar="SECONDS",
                       help="how long the job pauses for unavailable storage before stopping cleanly (a rerun "
                            "resumes); default an hour")
    infer.add_argument("--storage-patience", type=float, default=60.0, metavar="SECONDS",
                       help="how long one storage call retries before its work item waits for the pause")
    infer.add_argument("--small-video-mb", type=float, default=64,
                       help="videos below this size are fetched whole by a worker (one read); larger ones "
                            "are probed first and streamed by segment")
    infer.set_defaults(func=cmd_infer)

    status = commands.add_parser("status", help="progress and failures of an archive job, from its manifest "
                                                "(works while the job runs, from any machine)")
    status.add_argument("out", help="the --out prefix of `posecluster infer`")
    status.add_argument("--job", help="a job id (default: the latest job under OUT)")
    status.add_argument("--failures", type=int, default=20, help="list at most this many failed videos")
    status.add_argument("--json", action="store_true", help="the summary and failures as JSON")
    status.set_defaults(func=cmd_status)

    add_labeling_commands(commands)

    serve = commands.add_parser("serve", help="the web app: projects, labeling, refining and archive jobs "
                                "in the browser, on a local folder or an s3:// prefix")
    serve.add_argument("root", help="folder or prefix whose DeepLabCut projects and archive jobs are served; "
                                    "nothing outside it is reachable")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument("--token", help="access token (default: $POSECLUSTER_SERVE_TOKEN, else a random one, "
                                       "printed once in the URL; behind --access only when given)")
    serve.add_argument("--access", help="the facility mode: a YAML file of trusted proxy addresses and groups -> "
                                        "prefixes; the proxy's X-Forwarded-User/-Groups decide what a caller sees")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host name the app answers to besides loopback (the Ingress host; repeatable)")
    serve.add_argument("--tls-certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-keyfile", help="the certificate's private key (PEM)")
    serve.add_argument("--allow-remote", action="store_true",
                       help="listen beyond loopback on plain HTTP (TLS terminates in front: an Ingress, a proxy)")
    serve.add_argument("--secure-cookies", action="store_true",
                       help="the token cookie only over HTTPS (set when TLS terminates in front)")
    serve.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None,
                       help="the Ray dashboard (http://head:8265) the browser's jobs go to (default: $RAY_ADDRESS)")
    serve.add_argument("--local-ray", action="store_true",
                       help="start a private Ray head on this machine for the browser's jobs")
    serve.set_defaults(func=cmd_serve)

    weights = commands.add_parser("download-weights", help="fetch torchvision's ImageNet weights into TORCH_HOME "
                                  "(needs internet; the Dockerfile's IMAGENET_WEIGHTS build arg runs this)")
    weights.add_argument("backbones", nargs="+", choices=["resnet18", "resnet34", "resnet50", "resnet101"])
    weights.set_defaults(func=cmd_download_weights)
    return parser


def _start_metrics(args):
    """Serve this process's metrics on --metrics-port (prometheus-client) when asked."""
    if getattr(args, "metrics_port", None) is None and not getattr(args, "pushgateway", None):
        return None
    from posecluster import metrics

    exporter = metrics.PrometheusExporter()
    if args.metrics_port is not None:
        port = exporter.serve(args.metrics_port)
        logging.getLogger("posecluster").info("metrics on http://0.0.0.0:%d/metrics", port)
    metrics.use(exporter)
    return exporter


# Arguments that name locations. Local paths among them are made absolute here, once, for every command:
# Ray Train workers (and tasks on other nodes) do not run in this working directory.
LOCATION_ARGUMENTS = ("project", "out", "model", "run", "config", "videos", "inputs", "poses", "video")


def absolute_locations(args: argparse.Namespace) -> argparse.Namespace:
    from posecluster import storage

    for name in LOCATION_ARGUMENTS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, storage.absolute(value))
        elif isinstance(value, list):
            setattr(args, name, [storage.absolute(v) for v in value])
    return args


def main(argv: list[str] | None = None) -> int:
    args = absolute_locations(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "s3fs", "aiobotocore", "urllib3", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)  # their debug output can carry request headers
    for handler in logging.getLogger().handlers:
        handler.addFilter(storage.RedactingFilter())  # a presigned URL's signature never reaches a log
    exporter = _start_metrics(args)
    try:
        scope = Scope.of(args.confine) if args.confine else None
        with confined(scope):  # the job's scope, also carried into its Ray tasks and actors (cluster/runtime.py)
            return args.func(args)
    except (ValueError, OSError) as exc:  # bad input, a missing object, a StorageError: one line, no traceback
        print(f"posecluster {args.command}: error: {storage.redact_uri(str(exc))}", file=sys.stderr)
        return 2
    finally:
        if exporter is not None and args.pushgateway:
            exporter.push(args.pushgateway, job=f"posecluster_{args.command}")


if __name__ == "__main__":
    sys.exit(main())
