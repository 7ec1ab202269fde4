"""auto's reduced path is checked on the video being analysed (issue 30): timed against fp32 on its first
frames, kept only where faster, and a sample of the video's frames also predicted in fp32; a video whose
sample leaves the tolerance is predicted again, whole, in fp32. The oracle: the same frames predicted
one at a time by fp32 and by the candidate, independently of the pipeline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from posecluster import storage
from posecluster.cli.main import main
from posecluster.data.formats.poses import read_pose_table
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.infer.analyze import analyze_video
from posecluster.infer.ensemble import EnsemblePredictor
from posecluster.infer.pipeline import predict_segment
from posecluster.infer.predictor import Predictor
from posecluster.model.artifact import load_model
from posecluster.model.precision import CpuCapability, MAX_FLIP_SHARE, MAX_MEAN_PX, agreement, probe_cpu, timing_place

VNNI = CpuCapability(isa="AVX512", bf16=True, int8=True)
FRAMES = 12
PROBE = 2  # batches of one frame


def _untimed(trained):
    """`trained` as a model whose checks were not timed at calibration (an older model.pt, or a GPU path
    emulated on CPU): its candidate is judged for speed on the video alone."""
    checks = {path: replace(check, speedup=None, timed_on="") for path, check in trained.reduced.checks.items()}
    return replace(trained, reduced=replace(trained.reduced, checks=checks))


def _infer(trained, **settings):
    # Every frame sampled, whatever the sample costs (its thinning has a test of its own, at the end).
    # Ranges of any length checked (a range shorter than precision_min_range_frames has a test of its own).
    return trained.config.infer.model_copy(update={"batch_size": 1, "precision_probe_batches": PROBE,
                                                   "precision_sample_every": 1, "precision_sample_share": 1000,
                                                   "precision_min_range_frames": 0, **settings})


@pytest.fixture(scope="module")
def per_frame(trained_run, synthetic_project):
    """The first FRAMES frames' poses, one frame at a time, by fp32 and by auto's candidate (int8 with its
    rechecks), outside the pipeline."""
    trained = load_model(trained_run[0])
    video = synthetic_project.videos[0].uri
    frames = [rgb for _, rgb in read_frames(probe(video), 0, FRAMES, DecodeReport())]
    candidate = Predictor(trained, _infer(trained), cpu=VNNI)
    assert candidate.precision == "int8"
    exact = np.concatenate([candidate.predict_exact(frame[None]) for frame in frames])
    reduced = np.concatenate([candidate.predict(frame[None]) for frame in frames])
    return trained, video, exact, reduced


def _table(analysis) -> np.ndarray:
    return read_pose_table(analysis.outputs["h5"]).to_numpy().reshape(FRAMES, -1, 3)


def _meta(analysis) -> dict:
    return json.loads(storage.read_bytes(analysis.outputs["h5"].removesuffix(".h5") + "_meta.json"))


def _flip_cutoff(exact: np.ndarray, reduced: np.ndarray, first: int) -> float:
    """A p-cutoff that the candidate's likelihood and fp32's straddle on a frame after the probe (which
    starts at `first`), and on no frame of the probe: the sample must see the flip after the candidate's
    poses were handed on."""
    probe_values = np.concatenate([exact[first:first + PROBE, :, 2].ravel(), reduced[first:first + PROBE, :, 2].ravel()])
    for frame in range(first + PROBE, FRAMES):
        for part in range(exact.shape[1]):
            low, high = sorted((exact[frame, part, 2], reduced[frame, part, 2]))
            cut = (low + high) / 2
            if high - low > 1e-6 and not ((probe_values > low) & (probe_values < high)).any():
                return float(cut)
    pytest.skip("the candidate's likelihoods equal fp32's on these frames: no flip to provoke")


def _flipping(trained, video, exact):
    """(the model without its recheck margins and with a p-cutoff its int8 and fp32 likelihoods straddle
    on a frame after the probe, the first frame to analyse): its sample must leave the tolerance."""
    # With its rechecks the candidate predicts again every top this close to the p-cutoff
    # (decode.cutoff_margins); with margins of zero (recorded, so `auto` takes the path, but no decision
    # is ever that close) nothing is predicted again and the flip reaches the sample.
    unchecked = replace(trained, reduced=replace(trained.reduced,
                                                 recheck_margins={path: 0.0 for path in trained.reduced.recheck_margins}))
    reduced = np.concatenate([Predictor(unchecked, _infer(unchecked), cpu=VNNI).predict(frame[None]) for frame in
                              [rgb for _, rgb in read_frames(probe(video), 0, FRAMES, DecodeReport())]])
    # Unrechecked, int8 can move a keypoint by a cell on any frame: start where the probe's frames agree.
    first = next((f for f in range(FRAMES - PROBE - 1) if agreement(exact[f:f + PROBE], reduced[f:f + PROBE],
                                                                    trained.config.project.pcutoff).mean_px < 0.1), None)
    assert first is not None, "raw int8 moved a keypoint on every pair of frames"
    cut = _flip_cutoff(exact, reduced, first)
    project = trained.config.project.model_copy(update={"pcutoff": cut})
    assert agreement(exact[first:first + PROBE], reduced[first:first + PROBE], cut).passed  # the probe alone passes
    return replace(unchecked, config=trained.config.model_copy(update={"project": project})), first


def test_a_video_whose_sample_leaves_the_tolerance_is_predicted_again_whole_in_fp32(per_frame, tmp_path):
    trained, video, exact, _ = per_frame
    flipping, first = _flipping(trained, video, exact)
    predictor = Predictor(flipping, _infer(flipping, precision_min_speedup=0), cpu=VNNI)
    analysis = analyze_video(predictor, video, str(tmp_path), progress=False, start=first, stop=FRAMES)
    np.testing.assert_allclose(_table(analysis)[first:], exact[first:], atol=1e-4)  # every row fp32's
    check = _meta(analysis)["precision"]["video_check"]
    assert check["fell_back"] and _meta(analysis)["precision"]["fell_back"] and check["final_path"] == "fp32"
    assert check["repredicted_frames"] >= 1 and check["frames_by_path"] == {"fp32": FRAMES - first}
    assert "left the tolerance" in check["why"]
    assert check["sample_flip_share"] > MAX_FLIP_SHARE or check["sample_mean_px"] > MAX_MEAN_PX
    # An archive segment is checked and predicted again on its own, the same way.
    poses, result = predict_segment(predictor, probe(video), first, FRAMES)
    np.testing.assert_allclose(poses, exact[first:], atol=1e-4)
    assert result.check["fell_back"] and result.precision == "fp32"


def test_an_ensembles_members_are_checked_on_the_video_together_and_all_predicted_again_in_fp32(per_frame):
    from posecluster.infer.ensemble import EnsemblePredictor, predict_members

    if not probe_cpu().int8:
        pytest.skip(f"this CPU ({probe_cpu().describe()}) has no int8 path for the members to run")
    trained, video, exact, _ = per_frame
    flipping, first = _flipping(trained, video, exact)
    exact_member = replace(flipping, reduced=None)  # never calibrated: fp32 under auto
    ensemble = EnsemblePredictor([flipping, exact_member], _infer(flipping, precision_min_speedup=0))
    assert ensemble.precision == "int8+fp32"
    _, members, ranged = predict_members(ensemble, video, start=first, stop=FRAMES)
    assert ranged.check["fell_back"] and ranged.precision == "fp32" and "left the tolerance" in ranged.check["why"]
    for poses in members:  # every member's rows fp32's: none of the failed attempt's survives
        np.testing.assert_allclose(poses, exact[first:], atol=1e-4)


def test_auto_keeps_its_path_only_while_its_sample_agrees_and_records_what_the_sample_saw(per_frame, tmp_path):
    trained, video, exact, reduced = per_frame
    predictor = Predictor(trained, _infer(trained, precision_min_speedup=0, precision_sample_every=4), cpu=VNNI)
    analysis = analyze_video(predictor, video, str(tmp_path), progress=False, stop=FRAMES)
    # Sampled: the probe's frames, then every 4th frame from the 3rd on (2, 6, 10).
    sampled = sorted(set(range(PROBE)) | {i for i in range(PROBE, FRAMES) if i % 4 == 2})
    expected = agreement(exact[sampled], reduced[sampled], trained.config.project.pcutoff)
    check = _meta(analysis)["precision"]["video_check"]
    assert check["sample_frames"] == len(sampled)
    assert check["sample_mean_px"] == pytest.approx(expected.mean_px, abs=1e-4)
    within = expected.mean_px <= MAX_MEAN_PX and expected.flip_share <= MAX_FLIP_SHARE
    assert check["fell_back"] == (not within)
    table = _table(analysis)
    np.testing.assert_allclose(table[:PROBE], exact[:PROBE], atol=1e-4)  # the probe keeps fp32's poses
    np.testing.assert_allclose(table[PROBE:], (reduced if within else exact)[PROBE:], atol=1e-4)


def test_auto_runs_fp32_where_its_candidate_is_not_faster_counting_its_rechecks(per_frame, tmp_path):
    trained, video, exact, _ = per_frame
    trained = _untimed(trained)  # else calibration's timing already ruled the candidate out (test_precision)
    # Rechecks stop at bf16 (a frame rechecked in fp32 decides without timing: the test after this one).
    margins = {**trained.reduced.recheck_margins, "bf16": -1.0}
    trained = replace(trained, reduced=replace(trained.reduced, recheck_margins=margins))
    predictor = Predictor(trained, _infer(trained, precision_min_speedup=1000), cpu=VNNI)  # never fast enough
    analysis = analyze_video(predictor, video, str(tmp_path), progress=False, stop=FRAMES)
    meta = _meta(analysis)["precision"]
    check = meta["video_check"]
    assert check["slower_than_fp32"] and not check["fell_back"] and check["final_path"] == "fp32"
    assert check["fp32_fps"] > 0 and check["candidate_fps"] > 0 and "not faster" in check["speed"]
    assert check["frames_by_path"] == {"fp32": FRAMES} and meta["path_that_ran"] == "fp32"
    np.testing.assert_allclose(_table(analysis), exact, atol=1e-4)


def _counting_exact(predictor) -> list[int]:
    """The sizes of the batches `predictor` predicts in fp32 alone (its probe and sample, or fp32 after them)."""
    sizes: list[int] = []
    exact = predictor.predict_exact
    predictor.predict_exact = lambda frames: (sizes.append(len(frames)), exact(frames))[1]
    return sizes


def test_a_video_whose_every_frame_its_rechecks_predict_in_fp32_leaves_the_probe_after_one_batch(per_frame, tmp_path):
    trained, video, exact, _ = per_frame
    trained = _untimed(trained)
    # Margins no close call stays under: every frame goes int8 -> bf16 -> fp32, as on a video whose every
    # frame is a close call for the model.
    margins = {path: 1e9 for path in trained.reduced.recheck_margins}
    trained = replace(trained, reduced=replace(trained.reduced, recheck_margins=margins))
    predictor = Predictor(trained, _infer(trained, precision_min_speedup=1.05), cpu=VNNI)
    assert predictor.precision == "int8" and predictor.recheck_chain[-1][1] == "fp32"
    exact_batches = _counting_exact(predictor)
    analysis = analyze_video(predictor, video, str(tmp_path), progress=False, stop=FRAMES)
    check = _meta(analysis)["precision"]["video_check"]
    assert check["probe_frames"] == 1 and check["probe_frames_rechecked_in_fp32"] == 1  # one batch of PROBE
    assert check["slower_than_fp32"] and check["final_path"] == "fp32" and "predicted again in fp32" in check["why"]
    # The probe's frame took the poses its recheck predicted in fp32: fp32 alone ran on the other frames only.
    assert sum(exact_batches) == FRAMES - 1
    np.testing.assert_allclose(_table(analysis), exact, atol=1e-4)


def test_a_range_shorter_than_the_minimum_runs_fp32_and_a_range_as_long_runs_the_candidate(per_frame, tmp_path):
    trained, video, exact, _ = per_frame
    short = Predictor(trained, _infer(trained, precision_min_speedup=0, precision_min_range_frames=FRAMES + 1), cpu=VNNI)
    exact_batches = _counting_exact(short)
    analysis = analyze_video(short, video, str(tmp_path / "short"), progress=False, stop=FRAMES)
    meta = _meta(analysis)["precision"]
    check = meta["video_check"]
    assert check["range_too_short"] and check["probe_frames"] == 0 and check["frames_by_path"] == {"fp32": FRAMES}
    assert "shorter than infer.precision_min_range_frames (13)" in check["why"] and meta["path_that_ran"] == "fp32"
    assert sum(exact_batches) == FRAMES and short.rechecked_frames == 0  # the candidate never ran
    np.testing.assert_allclose(_table(analysis), exact, atol=1e-4)
    as_long = Predictor(trained, _infer(trained, precision_min_speedup=0, precision_min_range_frames=FRAMES), cpu=VNNI)
    check = _meta(analyze_video(as_long, video, str(tmp_path / "long"), progress=False, stop=FRAMES))["precision"]["video_check"]
    assert not check["range_too_short"] and check["probe_frames"] == PROBE


def _int8_timed(trained, speedup: float, cpu: CpuCapability = VNNI):
    """`trained` whose int8 check was timed at calibration at `speedup` on a CPU like `cpu`."""
    place = timing_place(torch.device("cpu"), cpu)
    checks = {**trained.reduced.checks, "int8": replace(trained.reduced.checks["int8"], speedup=speedup, timed_on=place)}
    return replace(trained, reduced=replace(trained.reduced, checks=checks))


def test_autos_shortest_range_follows_the_candidates_calibrated_speedup(per_frame, tmp_path):
    trained, video, exact, _ = per_frame
    auto = {"precision_min_speedup": 0, "precision_min_range_frames": "auto", "precision_probe_cost_share": 0.1}

    def checked(model, name: str) -> dict:
        predictor = Predictor(model, _infer(model, **auto), cpu=VNNI)
        analysis = analyze_video(predictor, video, str(tmp_path / name), progress=False, stop=FRAMES)
        np.testing.assert_allclose(_table(analysis)[:PROBE], exact[:PROBE], atol=1e-4)  # the probe keeps fp32's
        return _meta(analysis)["precision"]["video_check"]

    # The probe's worst cost, PROBE frames (batch 1) at 2/s of an fp32 frame each, is 10% of the 1 - 1/s
    # saved per frame from 2 * PROBE / (0.1 * (s - 1)) frames: 10 at 5x (the 12 frames run the probe),
    # 40 at 2x (fp32), and 300 where the speed was not timed on a CPU like this one.
    assert checked(_int8_timed(trained, 5.0), "fast")["probe_frames"] == PROBE
    slow = checked(_int8_timed(trained, 2.0), "slow")
    assert slow["range_too_short"] and "shorter than 40 frames" in slow["why"] and "2.00x" in slow["why"]
    elsewhere = checked(_int8_timed(trained, 5.0, CpuCapability(isa="AVX2", bf16=False, int8=True)), "elsewhere")
    assert elsewhere["range_too_short"] and "shorter than 300 frames" in elsewhere["why"]
    # An ensemble's members run one after another: an int8 member at 4x and an fp32 one give 2 / (1/4 + 1).
    pair = EnsemblePredictor([trained, trained], _infer(trained))
    pair.members = [Predictor(_int8_timed(trained, 4.0), _infer(trained), cpu=VNNI),
                    Predictor(trained, _infer(trained, mixed_precision="off"), cpu=VNNI)]
    assert [member.precision for member in pair.members] == ["int8", "fp32"]
    assert pair.calibrated_speedup == pytest.approx(2 / (1 / 4 + 1))


def test_the_cli_records_the_check_of_autos_path_on_the_video(trained_run, synthetic_project, tmp_path):
    cpu = probe_cpu()
    if not (cpu.int8 or cpu.bf16):
        pytest.skip(f"this CPU ({cpu.describe()}) runs fp32 under auto: nothing to check")
    def analysed(min_speedup: str, *more: str) -> dict:
        out = str(tmp_path / f"poses-{min_speedup}-{len(more)}")
        assert main(["analyze", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", out, "--quiet",
                     "--set", f"infer.precision_min_speedup={min_speedup}", *more]) == 0
        return json.loads(storage.read_bytes(storage.list_files(out, suffixes=("_meta.json",))[0]))["precision"]

    checked = analysed("0")  # poses alone judged: the candidate runs, checked on the video's sample
    assert checked["requested"] == "auto" and checked["path"] in ("int8", "bf16")
    assert checked["video_check"]["sample_frames"] > 0 and checked["path_that_ran"] in (checked["path"], "fp32")
    # A video shorter than infer.precision_min_range_frames (300 unless set; 0 in the tests' models): fp32.
    short = analysed("0", "--set", "infer.precision_min_range_frames=100000")
    assert short["video_check"]["range_too_short"] and short["path_that_ran"] == "fp32"
    # A speed-up no path reached at calibration: fp32 from the start, saying so, with no probe to run.
    slow = analysed("1000")
    assert slow["path"] == "fp32" and "not faster than fp32 x 1000" in slow["reason"] and "video_check" not in slow


class _TimedPaths:
    """A predictor whose two paths take known times per frame (a real clock; identical poses), to see how
    the probe's timings set the sample's density."""

    def __init__(self, exact_s: float, reduced_s: float, share: float):
        from types import SimpleNamespace

        self.exact_s, self.reduced_s = exact_s, reduced_s
        self.precision, self.rechecked_frames = "int8", 0
        self.exact_rows = np.empty(0, dtype=np.int64)  # no rechecks: fp32 runs on every probe frame
        self.infer = SimpleNamespace(precision_sample_every=2, precision_probe_batches=3, precision_min_speedup=1.05,
                                     precision_sample_share=share, precision_min_range_frames=0)
        self.config = SimpleNamespace(project=SimpleNamespace(pcutoff=0.6))

    def _poses(self, frames, seconds):
        import time

        time.sleep(seconds * len(frames))
        return np.zeros((len(frames), 2, 3))

    def predict(self, frames):
        return self._poses(frames, self.reduced_s)

    def predict_exact(self, frames):
        return self._poses(frames, self.exact_s)


@pytest.mark.parametrize("share, expected", [(0.25, 16), (1.0, 4), (100.0, 2)])
def test_the_fp32_sample_thins_out_to_cost_at_most_its_share_of_the_candidates_time(share, expected):
    from posecluster.infer.verify import VideoCheck

    paths = _TimedPaths(exact_s=0.040, reduced_s=0.010, share=share)  # fp32 four times the candidate's time
    check = VideoCheck(paths, start=0)
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    for batch in range(6):
        check.predict(np.arange(2 * batch, 2 * batch + 2), frames)
    # 1-in-every: the sample costs (4 / every) of the candidate's time; never denser than precision_sample_every.
    assert expected * 0.75 <= check.record()["sample_every"] <= expected * 1.25
    assert check.record()["final_path"] == "int8"


def test_an_ensemble_member_that_stays_exact_does_not_dilute_a_reduced_members_distances():
    from posecluster.infer.verify import VideoCheck

    paths = _TimedPaths(exact_s=0.0, reduced_s=0.0, share=1.0)
    check = VideoCheck(paths, start=0)
    exact = np.zeros((10, 2, 4, 3))  # (images, members, body parts, x/y/likelihood)
    exact[..., 2] = 0.9
    reduced = exact.copy()
    reduced[:, 0, :, 0] += 0.8  # member 0 moved by 0.8 px everywhere, member 1 exact
    check._compare(exact, reduced)
    found = check.agreement()
    assert found.mean_px == pytest.approx(0.8) and not check._within()  # averaged over both: 0.4, "within"


def test_the_probe_ends_at_its_first_timed_batch_where_the_candidate_was_slower():
    from posecluster.infer.verify import VideoCheck

    paths = _TimedPaths(exact_s=0.010, reduced_s=0.030, share=1.0)  # the candidate at three times fp32's time
    check = VideoCheck(paths, start=0)
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    for batch in range(6):
        check.predict(np.arange(2 * batch, 2 * batch + 2), frames)
    record = check.record()
    # Of precision_probe_batches=3: the first warms up, the second is timed and found slower.
    assert record["probe_frames"] == 4 and record["slower_than_fp32"] and record["final_path"] == "fp32"
    assert record["frames_by_path"] == {"fp32": 12} and "not faster" in record["why"]


def test_the_probe_keeps_fp32s_poses_where_some_frames_of_a_batch_were_rechecked_in_fp32(per_frame, tmp_path):
    import torch

    trained, video, exact, _ = per_frame
    trained = _untimed(trained)
    frames = np.stack([rgb for _, rgb in read_frames(probe(video), 0, 2 * 4, DecodeReport())])
    # Every frame goes int8 -> bf16; the bf16 -> fp32 step's margin is set in the widest gap between the
    # frames' bf16 decision margins, so that some frames of the probe go on to fp32 and others stop at bf16.
    bf16 = Predictor(trained, _infer(trained), cpu=VNNI, path="bf16")
    with torch.inference_mode(), bf16.choice.autocast(bf16.device):
        out = {name: value.float() for name, value in bf16.model(bf16.prepare(frames)[0]).items()}
    margins = np.sort(bf16.decision_margins(out, torch.arange(len(frames))).min(dim=-1).values.numpy())
    gap = int(np.argmax(np.diff(margins)))
    margins_by_path = {**trained.reduced.recheck_margins, "int8": 1e9, "bf16": float(margins[gap:gap + 2].mean())}
    trained = replace(trained, reduced=replace(trained.reduced, recheck_margins=margins_by_path))
    predictor = Predictor(trained, _infer(trained, batch_size=4, precision_min_speedup=0), cpu=VNNI)
    exact_batches = _counting_exact(predictor)
    analysis = analyze_video(predictor, video, str(tmp_path), progress=False, stop=len(frames))  # the probe alone
    check = _meta(analysis)["precision"]["video_check"]
    reused = check["probe_frames_rechecked_in_fp32"]
    assert check["probe_frames"] == len(frames) and 0 < reused < len(frames)
    # fp32 alone ran on the other frames (and on one reused frame of a timed batch that had no other).
    assert len(frames) - reused <= sum(exact_batches) <= len(frames) - reused + 1
    table = read_pose_table(analysis.outputs["h5"]).to_numpy().reshape(len(frames), -1, 3)
    np.testing.assert_allclose(table, exact[: len(frames)], atol=1e-4)
