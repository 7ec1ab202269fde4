from __future__ import annotations

import pytest

from posecluster.cli.main import main


@pytest.mark.slow
def test_the_multianimal_demo_finds_most_animals_within_a_fraction_of_their_length(tmp_path, capsys):
    """`posecluster demo --animals 3` as shipped (50 epochs on 128x96 frames, ~30 s on a quiet 2-core machine)."""
    from posecluster.demo_multianimal import run_multianimal_demo

    assert main(["demo", "--animals", "3", "--out", str(tmp_path / "cli"), "--epochs", "1", "--labeled-frames",
                 "10", "--video-frames", "2", "--quiet"]) == 0
    assert "error after matching" in capsys.readouterr().out
    report = run_multianimal_demo(str(tmp_path / "demo"), progress=False)
    test = report.matched["test"]
    assert test["matched"] >= 0.6 * test["labeled"], report.lines()
    assert report.test_error_px < 0.5 * report.body_length_px, report.lines()
