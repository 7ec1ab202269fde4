"""Every command the README shows is one the CLI takes: parsed by the real argument parser with its --set
values validated against the config, and the cheap ones run for real on the session's rendered data."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from posecluster import api, storage
from posecluster.cli.main import build_parser, main
from posecluster.config import PoseclusterConfig
from tests.conftest import copy_finished_run

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[tuple[int, str]]:
    """(line, command) of each `posecluster ...` line in the README's bash blocks, continuation lines
    joined and an optional flag written `[--flag]` taken as given."""
    commands, in_block, pending, start = [], False, "", 0
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() == "```bash"
            continue
        if not in_block:
            continue
        text = line.split(" #", 1)[0].rstrip() if not pending else line.rstrip()
        if pending:
            pending += " " + text.split(" #", 1)[0].strip()
        elif text.startswith("posecluster "):
            pending, start = text, number
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append((start, re.sub(r"\s\[(--[\w-]+)\]", r" \1", pending)))
        pending = ""
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_this_test_checks():
    shown = {shlex.split(command)[1] for _, command in COMMANDS}
    assert len(COMMANDS) >= 20
    assert {"train", "evaluate", "analyze", "infer", "sweep", "filter", "label-video", "plot", "outliers", "merge",
            "export", "serve", "extract-frames"} <= shown
    assert any("infer.mixed_precision=off" in command for _, command in COMMANDS)


def validate(command: str):
    """Parse as `posecluster` does and check the --set values as the command would."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    overrides = api.parse_overrides(getattr(args, "overrides", []))
    if args.command in ("analyze", "infer"):
        return args, api.infer_overrides(None, overrides)
    return args, PoseclusterConfig().with_overrides(overrides, source="--set")


@pytest.mark.parametrize("line,command", COMMANDS, ids=[f"README:{line}" for line, _ in COMMANDS])
def test_each_readme_command_parses_and_its_settings_are_valid(line, command):
    args, settings = validate(command)
    assert args.func is not None
    if "infer.mixed_precision=off" in command:
        assert settings == {"mixed_precision": "off"}


def test_the_readme_analysis_commands_run_on_rendered_data(ray_local, trained_run, synthetic_project, tmp_path,
                                                           capsys):
    """The README's analyze, evaluate, filter, plot and label-video lines, with its s3://lab locations
    standing for local copies of the session's run and videos (two videos: filter & co. run Ray tasks)."""
    videos = tmp_path / "videos"
    (videos / "day2").mkdir(parents=True)
    shutil.copy(synthetic_project.videos[0].uri, videos / "mouse1.mp4")
    shutil.copy(synthetic_project.videos[0].uri, videos / "day2" / "mouse2.mp4")
    run = tmp_path / "run1"
    copy_finished_run(trained_run[0], run)
    places = {"s3://lab/models/run1": str(run), "s3://lab/videos/mouse1.mp4": str(videos / "mouse1.mp4"),
              "s3://lab/videos/day2/": str(videos / "day2"), "s3://lab/poses-fp32": str(tmp_path / "poses-fp32"),
              "s3://lab/poses/2026/": str(tmp_path / "poses"), "s3://lab/poses": str(tmp_path / "poses"),
              "s3://lab/labeled/": str(tmp_path / "labeled"), "s3://lab/plots/": str(tmp_path / "plots")}
    ran = []
    for _, command in COMMANDS:
        argv = shlex.split(command)[1:]
        if argv[0] not in ("analyze", "evaluate", "filter", "plot", "label-video"):
            continue
        located = [places.get(word) or places.get(word.rstrip("/"), word) for word in argv]
        if any(word.startswith("s3://lab") for word in located):
            continue  # a location this test has no stand-in for (an ensemble, another run)
        assert main([*located, "--quiet"] if argv[0] == "analyze" else located) == 0, command
        ran.append(argv[0])
    assert ran.count("analyze") == 2 and {"evaluate", "filter", "plot", "label-video"} <= set(ran)
    assert "error" not in capsys.readouterr().err
    fp32 = storage.list_files(str(tmp_path / "poses-fp32"), suffixes=("_meta.json",))
    assert len(fp32) == 1 and '"requested": "off"' in storage.read_bytes(fp32[0]).decode()
    assert len(storage.list_files(str(tmp_path / "poses"), suffixes=("_filtered.h5",))) == 2
    assert storage.list_files(str(tmp_path / "labeled"), suffixes=("_labeled.mp4",))
