"""Every `posecluster` command line the README shows is run here through the CLI entry point, with stand-in
locations and tiny settings appended where the README's line would be slow, and each is checked for what
the README says it produces. test_every_readme_command_line_is_run_by_a_test keeps that promise: a command
line added to the README that no test here runs fails it.

Stand-ins: `s3://lab/...` and `s3://facility/...` are folders under a fresh local root (lab/..., facility/...);
relative paths (./openfield, session1.mp4, access.yaml) are relative to that root, the tests' working folder.
An output an object store mirrors as `s3://lab/poses/lab/videos/...` (bucket first) is, for a local video,
`<root>/lab/poses/<root>/lab/videos/...` (a local path's folders from the root): Lab.uri maps one to the other.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from posecluster import api
from posecluster.cli.main import build_parser, main
from posecluster.config import PoseclusterConfig
from tests.conftest import copy_finished_run

README = Path(__file__).resolve().parents[2] / "README.md"


# --- what the README shows --------------------------------------------------------------------------------

def readme_commands() -> list[tuple[int, str]]:
    """(line, command) of each `posecluster ...` command line in the README's bash blocks (continuation lines
    joined, comments dropped, `.venv/bin/posecluster` and `&&` chains included, an optional flag written
    `[--flag]` taken as given) and of each inline code span that is a command line: `posecluster` with a
    command and an argument, or an option (`posecluster --help`); a bare `posecluster train` names a
    command and is not one."""
    commands, in_block, pending, start = [], False, "", 0
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```bash" and not in_block
            continue
        if not in_block:
            for span in re.findall(r"`(posecluster [^`]+)`", line):
                words = span.split()
                if len(words) >= 3 or words[1].startswith("-"):
                    commands.append((number, optional_flags(span)))
            continue
        text = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if pending:
            pending += " " + text.strip()
        else:
            for segment in text.split("&&"):
                segment = segment.strip().removeprefix(".venv/bin/")
                if segment.startswith("posecluster "):
                    pending, start = segment, number
            if not pending:
                continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append((start, optional_flags(pending)))
        pending = ""
    return commands


def optional_flags(command: str) -> str:
    """`[--flag]` and `[--option VALUE]` as given."""
    return re.sub(r"\s\[(--[\w-]+(?: [A-Z]+)?)\]", r" \1", command)


COMMANDS = readme_commands()
EXAMPLES: set[str] = set()


def example(command: str) -> str:
    """A README command line a test below runs (the guard compares these with the README's)."""
    EXAMPLES.add(command)
    return command


# The README's command lines, in its order; Lab.run refuses a command that is not among them.
DEMO = example("posecluster demo")
DEMO_ANIMALS = example("posecluster demo --animals 3")
HELP = example("posecluster --help")
COMMAND_HELP = example("posecluster COMMAND --help")
TRAIN_RUN1 = example("posecluster train s3://lab/projects/openfield --out s3://lab/models/run1 --evaluate")
TRAIN_R18 = example("posecluster train ./openfield --out ./runs/r18 --backbone resnet18 --weights none "
                    "--set train.epochs=100 --set model.global_scale=0.5")
CALIBRATE = example("posecluster calibrate RUN")
EVALUATE = example("posecluster evaluate s3://lab/models/run1")
ANALYZE = example("posecluster analyze s3://lab/videos/mouse1.mp4 s3://lab/videos/day2/ --model s3://lab/models/run1 "
                  "--out s3://lab/poses --format csv --format parquet")
ANALYZE_FP32 = example("posecluster analyze s3://lab/videos/mouse1.mp4 --model s3://lab/models/run1 "
                       "--out s3://lab/poses-fp32 --set infer.mixed_precision=off")
INFER = example("posecluster infer s3://lab/videos/ --model s3://lab/models/run1 --out s3://lab/poses/ "
                "--gpus-per-worker 1 --batch-size 32")
STATUS = example("posecluster status <out> --job ID --json")
SOCIAL_TRAIN = example("posecluster train s3://lab/projects/social --out s3://lab/models/social1")
SOCIAL_EVALUATE = example("posecluster evaluate s3://lab/models/social1")
SOCIAL_ANALYZE = example("posecluster analyze s3://lab/videos/pair1.mp4 --model s3://lab/models/social1 "
                         "--out s3://lab/poses")
SOCIAL_INFER = example("posecluster infer s3://lab/videos/ --model s3://lab/models/social1 --out s3://lab/poses "
                       "--set infer.tracking.max_gap_frames=30")
TRAIN_DDP = example("posecluster train s3://lab/projects/openfield --workers 4 --gpus-per-worker 1 "
                    "--out s3://lab/models/run1")
SWEEP = example("posecluster sweep s3://lab/projects/openfield --out s3://lab/sweeps/lc1 --fractions 0.1 0.25 0.5 0.95 "
                "--shuffles 1 2 3 --gpus-per-trial 1")
TRAIN_ENSEMBLE = example("posecluster train s3://lab/projects/openfield --out s3://lab/models/ens1 --ensemble 3 "
                         "--vary-shuffles --gpus-per-worker 1")
ENSEMBLE_ANALYZE = example("posecluster analyze session1.mp4 --model s3://lab/models/ens1 --out s3://lab/poses/")
ENSEMBLE_INFER = example("posecluster infer s3://lab/videos/2026/ --model s3://lab/models/ens1 --out s3://lab/poses/")
ENSEMBLE_OUTLIERS = example("posecluster outliers s3://lab/poses/ --project s3://lab/projects/openfield "
                            "--algorithm ensemble --ensemble-std 5")
TRAIN_UNSUPERVISED = example("posecluster train s3://lab/projects/openfield --out s3://lab/models/run3 "
                             "--set 'unsupervised.losses=[{kind: temporal}, {kind: pca}]' --set unsupervised.clip_frames=4")
EXTRACT = example("posecluster extract-frames s3://lab/videos/2026/ --project s3://lab/projects/openfield "
                  "--method kmeans --n 20")
FILTER = example("posecluster filter s3://lab/poses/lab/videos/2026/ --method median")
LABEL_VIDEO = example("posecluster label-video s3://lab/poses/lab/videos/2026/ --out s3://lab/labeled/ --skeleton "
                      "--trail 5")
PLOT = example("posecluster plot s3://lab/poses/lab/videos/2026/ --out s3://lab/plots/")
OUTLIERS = example("posecluster outliers s3://lab/poses/lab/videos/2026/ --project s3://lab/projects/openfield "
                   "--algorithm jump --algorithm uncertain --epsilon 20 --p-bound 0.01 --n 20")
MERGE = example("posecluster merge s3://lab/projects/openfield")
TRAIN_RUN2 = example("posecluster train s3://lab/projects/openfield --out s3://lab/models/run2 --evaluate")
EXPORT = example("posecluster export s3://lab/models/run2 --out s3://lab/models/run2/export")
SERVE = example("posecluster serve s3://lab/")
SERVE_FACILITY = example("posecluster serve s3://facility/ --access access.yaml --ray-address http://head:8265")
SERVE_LOCAL_RAY = example("posecluster serve ROOT --local-ray")
CONFINE = example("posecluster --confine PREFIX... COMMAND")

# A training's tiny settings, appended after the README's own (later --set values win): ResNet-18 from
# scratch (no ImageNet file offline), one epoch on whole (uncropped) images, no int8 calibration (calibrate
# RUN does it where the README shows it).
TINY_TRAIN = ["--set", "train.epochs=1", "--set", "train.batch_size=4", "--set", "train.progress=no",
              "--set", "augment.crop_size=null", "--set", "model.backbone.name=resnet18",
              "--set", "model.backbone.weights=none", "--set", "train.int8_calibration_images=0",
              "--set", "train.precision_check_video_frames=8"]


def test_every_readme_command_line_is_run_by_a_test():
    shown = {command for _, command in COMMANDS}
    assert len(shown) >= 35
    assert shown - EXAMPLES == set(), "README command lines that no test runs (add them to this file)"
    assert EXAMPLES - shown == set(), "command lines this file runs that the README no longer shows"
    # and each one is used by a test here, not only listed
    source = Path(__file__).read_text()
    for name in re.findall(r"^([A-Z_0-9]+) = example\(", source, flags=re.M):
        assert re.search(rf"(lab\.run|lab\.argv)\({name}\b", source), f"{name} is listed but no test runs it"


def validate(command: str):
    """Parse as `posecluster` does and check the --set values as the command would."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    overrides = api.parse_overrides(getattr(args, "overrides", []))
    if args.command in ("analyze", "infer"):
        return args, api.infer_overrides(None, overrides)
    return args, PoseclusterConfig().with_overrides(overrides, source="--set")


@pytest.mark.parametrize("line,command", [(n, c) for n, c in COMMANDS if not re.search(r"[A-Z]{3,}|<|--help", c)],
                         ids=lambda value: f"README:{value}" if isinstance(value, int) else "")
def test_each_readme_command_parses_and_its_settings_are_valid(line, command):
    args, settings = validate(command)
    assert args.func is not None
    if "infer.mixed_precision=off" in command:
        assert settings == {"mixed_precision": "off"}


# --- running them ----------------------------------------------------------------------------------------

class Lab:
    """The README's locations under a local root, and its commands run through `main` there."""

    def __init__(self, root: Path, capsys):
        self.root, self.capsys = root, capsys

    def path(self, uri: str) -> Path:
        return Path(self.uri(uri))

    def uri(self, word: str) -> str:
        for bucket in ("lab", "facility"):
            if word == f"s3://{bucket}" or word.startswith(f"s3://{bucket}/"):
                key = word[len(f"s3://{bucket}"):]
                mirrored = re.match(r"/poses/(lab|facility)(/.*)?$", key)
                if mirrored:  # an object store's mirror names the bucket first; a local root's mirror its folders
                    return f"{self.root}/{bucket}/poses{self.root}/{mirrored[1]}{mirrored[2] or ''}"
                return f"{self.root}/{bucket}{key}"
        return word

    def argv(self, command: str, *extra: str, swap: dict[str, str] | None = None,
             fill: dict[str, str] | None = None) -> list[str]:
        """The command's words with the stand-in locations, `swap` replacing an option's value (a GPU count on
        this CPU machine), `fill` a placeholder (RUN, <out>), and `extra` (tiny settings) appended."""
        assert command in EXAMPLES and command in {c for _, c in COMMANDS}, command
        words = [self.uri((fill or {}).get(word, word)) for word in shlex.split(command)[1:]]
        for option, value in (swap or {}).items():
            words[words.index(option) + 1] = value
        return [*words, *extra]

    def run(self, command: str, *extra: str, swap: dict[str, str] | None = None, fill: dict[str, str] | None = None,
            expect: int = 0) -> str:
        argv = self.argv(command, *extra, swap=swap, fill=fill)
        self.capsys.readouterr()
        code = main(argv)
        printed = self.capsys.readouterr()
        assert code == expect, f"{command} -> {code}\n{printed.out}\n{printed.err}"
        return printed.out


@pytest.fixture
def lab(tmp_path, monkeypatch, capsys) -> Lab:
    monkeypatch.chdir(tmp_path)
    return Lab(tmp_path, capsys)


@pytest.fixture(scope="module")
def tiny_project(tmp_path_factory):
    """A 64x64 rendered project (10 labeled frames, a 16-frame video) that trains one epoch in ~1-2 s."""
    from posecluster.data import synthetic

    root = tmp_path_factory.mktemp("tiny-project")
    return synthetic.write_project(str(root / "openfield"), labeled_frames=10, video_frames=16,
                                   scene=synthetic.Scene(width=64, height=64, seed=3, body_length=0.4))


def files(folder: Path, suffix: str) -> list[Path]:
    return sorted(folder.rglob(f"*{suffix}"))


def test_the_training_examples_train_and_evaluate(lab, tiny_project):
    shutil.copytree(tiny_project.uri, lab.path("s3://lab/projects/openfield"))
    shutil.copytree(tiny_project.uri, lab.root / "openfield")

    printed = lab.run(TRAIN_RUN1, *TINY_TRAIN)
    run1 = lab.path("s3://lab/models/run1")
    assert "trained 1 epochs" in printed and "test error" in printed  # --evaluate's summary
    for name in ("config.yaml", "split.json", "history.csv", "model.pt"):
        assert (run1 / name).is_file(), name
    assert files(run1 / "checkpoints", ".pt")
    assert len(pd.read_csv(run1 / "history.csv")) == 1

    # `posecluster calibrate RUN` on it (trained without: TINY_TRAIN): model.pt gains the int8 graph and checks
    before = (run1 / "model.pt").read_bytes()
    printed = lab.run(CALIBRATE, "--images", "4", fill={"RUN": "s3://lab/models/run1"})
    assert "int8 graph sha256" in printed and "int8 vs fp32" in printed
    assert (run1 / "model.pt").read_bytes() != before

    lab.run(TRAIN_R18, *TINY_TRAIN)
    resolved = PoseclusterConfig.load(str(lab.root / "runs" / "r18" / "config.yaml"))
    assert (lab.root / "runs" / "r18" / "model.pt").is_file()
    assert (resolved.model.backbone.name, resolved.model.backbone.weights, resolved.model.global_scale) == \
        ("resnet18", "none", 0.5)

    lab.run(TRAIN_UNSUPERVISED, *TINY_TRAIN)
    run3 = lab.path("s3://lab/models/run3")
    resolved = PoseclusterConfig.load(str(run3 / "config.yaml"))
    assert [loss.kind for loss in resolved.unsupervised.losses] == ["temporal", "pca"]
    assert resolved.unsupervised.clip_frames == 4 and (run3 / "model.pt").is_file()
    history = pd.read_csv(run3 / "history.csv")
    assert any("temporal" in column for column in history.columns), list(history.columns)


def test_the_analysis_and_archive_examples(ray_local, trained_run, synthetic_project, lab):
    """Evaluate, analyze (two ways), the archive run and its status, on the session's detector."""
    video = synthetic_project.videos[0].uri
    for name in ("mouse1.mp4", "day2/mouse2.mp4", "2026/mouse3.mp4"):
        lab.path(f"s3://lab/videos/{name}").parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, lab.path(f"s3://lab/videos/{name}"))
    run1 = lab.path("s3://lab/models/run1")
    copy_finished_run(trained_run[0], run1)

    printed = lab.run(EVALUATE)
    assert "test error" in printed and "snout" in printed
    for name in ("results.csv", "results.json", "predictions.csv", "test_predictions.png"):
        assert (run1 / "evaluation" / name).is_file(), name

    printed = lab.run(ANALYZE, "--quiet")
    poses = lab.path("s3://lab/poses/lab/videos")
    for stem in ("mouse1", "day2/mouse2"):
        for suffix in (".h5", ".csv", ".parquet", "_meta.json"):
            assert len(list((poses / stem).parent.glob(f"{Path(stem).name}*{suffix}"))) == 1, (stem, suffix)
    assert len(pd.read_hdf(files(poses, ".h5")[0])) == 64 and printed.count("64 frames") == 2

    lab.run(ANALYZE_FP32, "--quiet")
    meta = json.loads(files(lab.path("s3://lab/poses-fp32"), "_meta.json")[0].read_text())
    assert meta["precision"]["requested"] == "off" and meta["precision"]["path"] == "fp32"

    if not torch.cuda.is_available():
        # --gpus-per-worker 1 asks Ray for a GPU this machine lacks: no worker can be placed, and the job
        # stops cleanly when --outage-limit (an hour; here 1 s) has passed. Then it runs on the CPU.
        printed = lab.run(INFER, "--quiet", "--outage-limit", "1", expect=2)
        assert "STOPPED" in printed, printed
    printed = lab.run(INFER, "--quiet", swap={"--gpus-per-worker": "0"})
    assert "3 videos: 3 done" in printed, printed
    archive = lab.path("s3://lab/poses/")
    assert (archive / "posecluster-manifest.json").is_file()
    assert len(files(lab.path("s3://lab/poses/lab/videos"), "_meta.json")) == 3

    # `posecluster status <out> [--job ID] [--json]`: the plain summary, then one job's as JSON
    job = json.loads((archive / "posecluster-manifest.json").read_text())["job_id"]
    status_argv = lab.argv(STATUS, fill={"<out>": "s3://lab/poses/", "ID": job})
    lab.capsys.readouterr()
    assert main(["status", str(archive)]) == 0 and "videos: 3 of 3 finished" in lab.capsys.readouterr().out
    assert main(status_argv) == 0
    summary = json.loads(lab.capsys.readouterr().out)
    assert summary["job_id"] == job and summary["videos_total"] == 3 and not summary["counts"].get("failed")

    # `posecluster --confine PREFIX... COMMAND`: the same status inside the lab's folder, then refused outside it
    confine = lab.argv(CONFINE)
    assert confine[:2] == ["--confine", "PREFIX..."]
    assert main(["--confine", str(lab.root / "lab"), "status", str(archive)]) == 0
    lab.capsys.readouterr()
    assert main(["--confine", str(lab.root / "facility"), "status", str(archive)]) == 2
    assert "outside" in lab.capsys.readouterr().err

    # The labeling loop over the archive's 2026 folder, in the README's order.
    project = lab.path("s3://lab/projects/openfield")
    shutil.copytree(synthetic_project.uri, project)
    lab.run(EXTRACT)
    extracted = project / "labeled-data" / "mouse3"
    assert len(list(extracted.glob("img*.png"))) == 20 and files(extracted, ".h5")
    assert "mouse3" in (project / "config.yaml").read_text()  # video_sets

    lab.run(FILTER)
    assert len(files(lab.path("s3://lab/poses/lab/videos/2026"), "_filtered.h5")) == 1
    lab.run(LABEL_VIDEO)
    labeled = files(lab.path("s3://lab/labeled"), "_labeled.mp4")
    assert len(labeled) == 1
    import av

    with av.open(str(labeled[0])) as container:
        assert sum(1 for _ in container.decode(video=0)) == 64
    lab.run(PLOT)
    plots = {p.name for p in lab.path("s3://lab/plots").rglob("*.png")}
    assert plots == {"trajectory.png", "plot.png", "plot-likelihood.png", "hist.png"}, plots
    printed = lab.run(OUTLIERS)
    assert files(extracted, ".json") and list(extracted.glob("machinelabels-iter0.h5")), printed

    iteration = yaml.safe_load((project / "config.yaml").read_text())["iteration"]
    printed = lab.run(MERGE)
    assert yaml.safe_load((project / "config.yaml").read_text())["iteration"] == iteration + 1, printed

    printed = lab.run(TRAIN_RUN2, *TINY_TRAIN, "--set", "model.global_scale=1.0")
    run2 = lab.path("s3://lab/models/run2")
    assert "test error" in printed and (run2 / "model.pt").is_file()
    printed = lab.run(EXPORT)
    for name in ("model.torchscript.pt", "model.onnx", "export.json"):
        assert (run2 / "export" / name).is_file(), (name, printed)
    # run2 was trained without its int8 version (TINY_TRAIN): "model.int8.onnx when the model carries one"
    assert not (run2 / "export" / "model.int8.onnx").exists()


def test_the_ensemble_examples(ray_local, ensemble_folder, synthetic_project, lab):
    """Analysis, archive and outliers with an ensemble (the session's three members; training one is slow)."""
    shutil.copytree(ensemble_folder, lab.path("s3://lab/models/ens1"))
    shutil.copytree(synthetic_project.uri, lab.path("s3://lab/projects/openfield"))
    shutil.copy(synthetic_project.videos[0].uri, lab.root / "session1.mp4")
    lab.path("s3://lab/videos/2026").mkdir(parents=True)
    shutil.copy(synthetic_project.videos[0].uri, lab.path("s3://lab/videos/2026/mouse3.mp4"))

    lab.run(ENSEMBLE_ANALYZE, "--quiet")
    lab.run(ENSEMBLE_INFER, "--quiet")
    poses = lab.path("s3://lab/poses/")
    for stem in ("session1", "mouse3"):
        written = [p.name for p in poses.rglob(f"{stem}*") if ".posecluster" not in p.parts]
        assert any(n.endswith("_ensemble_variance.h5") for n in written), written
        assert sum("_member" in n for n in written) == 3 and any(n.endswith("_meta.json") for n in written), written
    printed = lab.run(ENSEMBLE_OUTLIERS)
    assert "session1" in printed and "mouse3" in printed, printed


def test_the_multianimal_examples(ray_local, lab):
    from posecluster.data.synthetic_multianimal import MultiAnimalScene, write_project

    project = write_project(str(lab.path("s3://lab/projects/social")), labeled_frames=12, video_frames=4,
                            scene=MultiAnimalScene(width=64, height=64))
    lab.path("s3://lab/videos").mkdir(parents=True)
    shutil.copy(project.videos[0].uri, lab.path("s3://lab/videos/pair1.mp4"))
    lab.run(SOCIAL_TRAIN, *TINY_TRAIN, "--set", "model.global_scale=1.0")
    assert lab.path("s3://lab/models/social1/model.pt").is_file()
    printed = lab.run(SOCIAL_EVALUATE)
    assert "multi-animal error after matching" in printed
    assert lab.path("s3://lab/models/social1/evaluation/results.json").is_file()
    lab.run(SOCIAL_ANALYZE, "--quiet")
    tracked = files(lab.path("s3://lab/poses"), "_el.h5")
    assert len(tracked) == 1 and len(pd.read_hdf(tracked[0])) == 4
    printed = lab.run(SOCIAL_INFER, "--quiet")
    assert "1 videos: 1 done" in printed, printed
    metas = [p for p in files(lab.path("s3://lab/poses"), "_meta.json") if ".posecluster" not in p.parts]
    assert len(metas) == 1 and '"max_gap_frames": 30' in metas[0].read_text()


@pytest.mark.slow  # ~30 s on a quiet machine, 90 s at load 6: two demos, each training, calibrating, analyzing;
# tests/test_demo.py runs the single-animal demo's flow with one epoch in the default run
def test_the_demos_run(lab):
    """`posecluster demo` (one animal) and `posecluster demo --animals 3`, each with one epoch on a few frames."""
    printed = lab.run(DEMO, "--out", "demo", "--epochs", "1", "--labeled-frames", "12", "--video-frames", "20",
                      "--quiet")
    for line in ("labeled-frame error:", "chance (mean pose):", "video vs truth:", "analysis speed:"):
        assert line in printed, printed
    assert files(lab.root / "demo", ".h5")
    printed = lab.run(DEMO_ANIMALS, "--out", "demo3", "--epochs", "1", "--labeled-frames", "10", "--video-frames", "2",
                      "--quiet")
    assert "error after matching" in printed and "3 animals" in printed, printed


def test_help_explains_every_command(lab):
    """`posecluster --help` and `posecluster COMMAND --help` for every command."""
    with pytest.raises(SystemExit) as stop:
        main(lab.argv(HELP))
    assert stop.value.code == 0
    printed = lab.capsys.readouterr().out
    commands = build_parser()._subparsers._group_actions[0].choices
    for command in commands:
        assert f"posecluster {command}" in printed, command
        with pytest.raises(SystemExit) as stop:
            main(lab.argv(COMMAND_HELP)[:0] + [command, "--help"])
        assert stop.value.code == 0 and "usage: posecluster" in lab.capsys.readouterr().out


def serve_in_a_process(argv: list[str], cwd: Path):
    """`posecluster serve ...` as its own process, and the URL it announces."""
    env = {**os.environ, "PYTHONPATH": str(README.parent)}  # this checkout's posecluster, from any folder
    process = subprocess.Popen([sys.executable, "-m", "posecluster", *argv], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line)
        found = re.search(r"(https?://127\.0\.0\.1:\d+/)(\?token=(\S+))?", line)
        if found:
            return process, found[1], found[3], lines
    process.wait()
    raise AssertionError("".join(lines))


def get_json(url: str, headers: dict[str, str]):
    """GET, asking again while the server that announced itself is still starting to listen."""
    request = urllib.request.Request(url, headers=headers)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_examples(lab, tiny_project):
    """Both `posecluster serve` lines started for real (a server: each is stopped after one request)."""
    shutil.copytree(tiny_project.uri, lab.path("s3://lab/projects/openfield"))
    process, base, token, _ = serve_in_a_process(lab.argv(SERVE), lab.root)
    try:
        status, body = get_json(base + "api/projects", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "projects/openfield" in json.dumps(body), body
    finally:
        process.terminate()
        process.wait(30)

    shutil.copytree(tiny_project.uri, lab.path("s3://facility/smith/openfield"))
    shutil.copytree(tiny_project.uri, lab.path("s3://facility/jones/openfield"))
    (lab.root / "access.yaml").write_text("trusted_proxies: [127.0.0.1/32]\ngroups:\n  smith-lab: [smith/]\n")
    process, base, _, lines = serve_in_a_process(lab.argv(SERVE_FACILITY), lab.root)
    try:
        assert "behind the sign-in proxy" in "".join(lines)
        status, body = get_json(base + "api/projects", {"X-Forwarded-User": "alice",
                                                        "X-Forwarded-Groups": "smith-lab"})
        assert status == 200 and "smith/openfield" in json.dumps(body) and "jones" not in json.dumps(body), body
    finally:
        process.terminate()
        process.wait(30)


# --- the README lines that need a cluster's GPUs, or run long ------------------------------------------------

@pytest.mark.slow  # Ray Train's start-up alone is ~15 s
def test_data_parallel_training(ray_local, tiny_project, lab):
    """`--workers 4 --gpus-per-worker 1`: four GPU workers; here two CPU workers (this Ray has 2 CPUs, no GPU)."""
    shutil.copytree(tiny_project.uri, lab.path("s3://lab/projects/openfield"))
    printed = lab.run(TRAIN_DDP, *TINY_TRAIN, swap={"--workers": "2", "--gpus-per-worker": "0"})
    assert "trained 1 epochs" in printed and lab.path("s3://lab/models/run1/model.pt").is_file()


@pytest.mark.slow  # 12 trials and 3 ensemble members, each a training
def test_sweep_and_ensemble_training(ray_local, tiny_project, lab):
    """The learning curve and an ensemble's training, their GPUs per trial replaced by none (no GPU here)."""
    shutil.copytree(tiny_project.uri, lab.path("s3://lab/projects/openfield"))
    printed = lab.run(SWEEP, *TINY_TRAIN, swap={"--gpus-per-trial": "0"})
    curve = pd.read_csv(lab.path("s3://lab/sweeps/lc1/learning_curve.csv"))
    assert len(curve) == 12 and lab.path("s3://lab/sweeps/lc1/learning_curve.png").is_file(), printed
    printed = lab.run(TRAIN_ENSEMBLE, *TINY_TRAIN, swap={"--gpus-per-worker": "0"})
    manifest = json.loads(lab.path("s3://lab/models/ens1/ensemble.json").read_text())
    assert len(manifest["members"]) == 3 and "ensemble of 3" in printed
    assert {m["shuffle"] for m in manifest["members"]} == {1, 2, 3}  # --vary-shuffles
    for k in range(3):
        assert lab.path(f"s3://lab/models/ens1/member-{k}/model.pt").is_file()


@pytest.mark.slow  # starts a private Ray head (~15 s)
def test_serve_with_a_private_ray_head(lab, tiny_project):
    shutil.copytree(tiny_project.uri, lab.root / "root" / "openfield")
    argv = lab.argv(SERVE_LOCAL_RAY, fill={"ROOT": str(lab.root / "root")})
    process, base, token, lines = serve_in_a_process(argv, lab.root)
    try:
        for line in process.stdout:  # the private head is announced after the URL
            lines.append(line)
            if "private Ray head" in line or len(lines) > 10:
                break
        status, body = get_json(base + "api/projects", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "openfield" in json.dumps(body)
    finally:
        process.terminate()
        process.wait(60)
