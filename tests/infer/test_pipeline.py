from __future__ import annotations

import numpy as np
import pytest

from posecluster.data.video import probe
from posecluster.infer.pipeline import consecutive_runs, predict_range
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model


def test_consecutive_runs_split_at_gaps():
    assert consecutive_runs(np.array([3, 4, 5, 9, 10, 12])) == [(0, 3), (3, 5), (5, 6)]
    assert consecutive_runs(np.array([], dtype=int)) == []


def test_a_decoder_failure_in_the_background_thread_reaches_the_caller(trained_run, synthetic_project, tmp_path):
    predictor = Predictor(load_model(trained_run[0]))
    info = probe(synthetic_project.videos[0].uri)
    info.uri = str(tmp_path / "vanished.mp4")  # the object disappears between planning and decoding
    with pytest.raises(FileNotFoundError, match="vanished.mp4"):
        predict_range(predictor, info, 0, 10, lambda first, poses: None)


def test_batches_arrive_in_frame_order_and_cover_the_range(trained_run, synthetic_project):
    predictor = Predictor(load_model(trained_run[0]))
    info = probe(synthetic_project.videos[0].uri)
    seen = []
    result = predict_range(predictor, info, 5, 40, lambda first, poses: seen.extend(range(first, first + len(poses))))
    assert seen == list(range(5, 40)) and result.frames == 35 and result.fps > 0


def test_rows_from_a_reader_that_repeats_or_reorders_frames_are_refused_not_written(trained_run, synthetic_project,
                                                                                   monkeypatch):
    """The sink is the last line of defence for frame numbering: a reader bug must stop the video with
    the frame named, never write a pose into another frame's row."""
    from posecluster.errors import InputError
    from posecluster.infer import pipeline

    real = pipeline.read_frames

    def swapping_reader(*args, **kwargs):  # the real decoder, with frames 12 and 13 handed over swapped
        frames = list(real(*args, **kwargs))
        frames[12], frames[13] = frames[13], frames[12]
        yield from frames

    monkeypatch.setattr(pipeline, "read_frames", swapping_reader)
    predictor = Predictor(load_model(trained_run[0]), load_model(trained_run[0]).config.infer.with_overrides(
        {"batch_size": 4}))
    info = probe(synthetic_project.videos[0].uri)
    written = []
    with pytest.raises(InputError, match="out of order") as refused:
        predict_range(predictor, info, 0, 30, lambda first, poses: written.extend(range(first, first + len(poses))))
    assert "frame 12" in str(refused.value) and info.uri in str(refused.value)
    assert written == list(range(12))  # the batches before the swap, and nothing of the bad one


def test_the_path_that_ran_is_recorded_in_the_range_result_and_in_analyze_meta(trained_run, synthetic_project,
                                                                               tmp_path):
    import json

    from posecluster import storage
    from posecluster.infer.analyze import analyze_video
    from posecluster.model.precision import CpuCapability

    trained = load_model(trained_run[0])
    info = probe(synthetic_project.videos[0].uri)
    vnni = CpuCapability(isa="AVX512", bf16=True, int8=True)
    # auto's int8 is a candidate: a 4-frame range lies inside its probe (infer.verify), whose rows are fp32's.
    for cpu, setting, path in ((vnni, "auto", "fp32"), (CpuCapability(isa="AVX2"), "auto", "fp32"),
                               (vnni, "on", "bf16"), (vnni, "off", "fp32")):
        predictor = Predictor(trained, trained.config.infer.model_copy(update={"mixed_precision": setting}), cpu=cpu)
        ranged = predict_range(predictor, info, 0, 4, lambda first, poses: None)
        assert ranged.precision == path and ranged.check.get("candidate") == ("int8" if cpu is vnni and setting == "auto" else None)
    analysis = analyze_video(Predictor(trained, cpu=vnni), info.uri, str(tmp_path), progress=False, stop=4)
    meta = json.loads(storage.read_bytes(analysis.outputs["h5"].removesuffix(".h5") + "_meta.json"))
    assert meta["precision"]["path"] == "int8" and meta["precision"]["requested"] == "auto"
    assert meta["precision"]["int8_sha256"] == trained.reduced.int8_sha256
    assert "poses vs fp32" in meta["precision"]["reason"] and meta["precision"]["batch_size"] == 16
    margins = trained.reduced.recheck_margins  # int8's close calls go to bf16 on this CPU, bf16's to fp32
    assert meta["precision"]["rechecks"] == [{"margin_logits": margins["int8"], "path": "bf16"},
                                             {"margin_logits": margins["bf16"], "path": "fp32"}]
    assert 0 <= meta["precision"]["rechecked_frames"] <= 4


def test_batch_size_auto_on_cpu_follows_the_precision_path(trained_run):
    """fp32 one frame at a time, bf16 pairs, int8 fours (benchmarks/inference_speed.py's batch sweep)."""
    from posecluster.model.precision import CpuCapability

    trained = load_model(trained_run[0])
    for setting, path, size in (("off", "fp32", 1), ("on", "bf16", 2), ("int8", "int8", 4)):
        infer = trained.config.infer.model_copy(update={"batch_size": "auto", "device": "cpu", "mixed_precision": setting})
        predictor = Predictor(trained, infer, cpu=CpuCapability(isa="AVX512", bf16=True, int8=True))
        assert (predictor.precision, predictor.batch_size) == (path, size)
    infer = trained.config.infer.model_copy(update={"batch_size": 3, "device": "cpu", "mixed_precision": "int8"})
    assert Predictor(trained, infer).batch_size == 3  # a number forces it
