"""`auto`'s reduced path, checked on the video being analysed, for speed and for poses, as the job runs.

A model's calibration checks (model.precision) license a candidate path (int8, bf16, fp16) on the images
they saw; a facility applies the model to new sessions, cameras and lighting, and a recheck-heavy video can
make the candidate slower than fp32. So a range that `auto` runs on a reduced path is watched:

- probe: its first `precision_probe_batches` batches run both ways, the candidate (its rechecks included)
  then fp32 on the frames its rechecks did not already predict in fp32, timed one after the other so that
  both see the same load (the first batch warms up and is not timed); fp32's poses are the ones kept. The
  candidate goes on only where it was faster than fp32 by infer.precision_min_speedup counting the sample
  below, and its poses were within tolerance. The probe ends at the first timed batch where the candidate
  was slower, or at the first batch where its rechecks predicted so many frames again in fp32 that it
  cannot be faster (a video unlike the training images: every frame a close call): such a video pays
  one or two batches of the candidate, not the whole probe.
- a range too short for the candidate's calibrated speed-up to repay the probe's worst cost runs fp32
  (shortest_range, `precision_min_range_frames`).
- sample: then every `precision_sample_every`-th frame (spread over the range) is also predicted in fp32,
  or every n-th where the probe's timings say that sample would cost more than `precision_sample_share`
  of the candidate's own time (a check that eats the speed-up defeats the path it checks);
  the sample's agreement must stay within MAX_MEAN_PX / MAX_FLIP_SHARE, and the candidate's measured time
  per frame (rechecks and sample included) below fp32's, or the range goes to fp32.

A range that leaves the tolerance after some of its reduced poses were handed on raises FallBack: its
caller predicts the whole range again in fp32 (pipeline.with_fallback), so no pose of a range that failed
its check survives. The range is what a caller writes whole: a video for `analyze`/`infer`, a segment of
an archive job (each segment is checked on its own sample spread over it, so a fallback re-predicts that
segment alone and a resumed job keeps the segments that passed), a one-pass read's whole pass (its windows
are rewritten). A range that turns slower than fp32 goes on in fp32 without re-predicting: its poses so
far were within tolerance.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from posecluster.model.precision import MAX_FLIP_SHARE, MAX_MEAN_PX, Agreement

log = logging.getLogger(__name__)

# Frames of the candidate timed (the probe's included) before its running time may send the range to fp32.
MIN_FRAMES_FOR_SPEED = 32
# Before the probe's last batch, a candidate ends it only when clearly slower: its time per frame over
# fp32's above this (times precision_min_speedup's); one timed batch is a small sample on a busy machine.
CLEARLY_SLOWER = 1.25


# infer.precision_min_range_frames=auto where the candidate's speed-up was not timed on a machine like this.
RANGE_WITHOUT_SPEED = 300


def shortest_range(predictor) -> tuple[float, str]:
    """The shortest range `auto` runs its candidate on, and why (infer.precision_min_range_frames).

    auto: the probe runs the candidate on at most precision_probe_batches batches beside fp32, whose poses
    are kept; where the candidate loses, each of those frames costs its own pass and its non-fp32 rechecks,
    bounded by 2/s of an fp32 frame at a calibrated speed-up s (the fp32 rechecks are reused). Where it
    wins it saves 1 - 1/s of an fp32 frame on every frame. The range must be long enough for that worst
    cost to be at most precision_probe_cost_share of the saving."""
    infer = predictor.infer
    if infer.precision_min_range_frames != "auto":
        return infer.precision_min_range_frames, f"shorter than infer.precision_min_range_frames ({infer.precision_min_range_frames})"
    speedup = predictor.calibrated_speedup
    if speedup is None:
        return RANGE_WITHOUT_SPEED, (f"shorter than {RANGE_WITHOUT_SPEED} frames, the minimum where "
                                     f"{predictor.precision}'s speed-up was not timed on a machine like this one")
    if speedup <= 1:
        return math.inf, f"{predictor.precision} ran {speedup:.2f}x fp32's speed at calibration"
    probe_frames = infer.precision_probe_batches * predictor.batch_size
    shortest = math.ceil(2 * probe_frames / (infer.precision_probe_cost_share * (speedup - 1)))
    return shortest, (f"shorter than {shortest} frames, from which {predictor.precision} at its calibrated "
                      f"{speedup:.2f}x fp32's speed saves {1 / infer.precision_probe_cost_share:g}x the probe's "
                      f"worst cost ({probe_frames} frames; infer.precision_probe_cost_share)")


class FallBack(Exception):
    """The sample left the tolerance after reduced poses of the range were handed on: predict the range
    again in fp32. `record`: the check so far (VideoCheck.record)."""

    def __init__(self, record: dict):
        super().__init__(f"reduced precision left the tolerance on this video: {record.get('why', '')}")
        self.record = record


def wants_check(predictor) -> bool:
    """Whether `predictor` runs a candidate `auto` chose (forced paths run as asked); an ensemble's members
    are checked together, all of them predicted again in fp32 where their sample leaves the tolerance."""
    infer = getattr(predictor, "infer", None)
    return (getattr(predictor, "predict_exact", None) is not None and infer is not None
            and infer.mixed_precision == "auto" and predictor.precision != "fp32")


class VideoCheck:
    """One range's check of the candidate path (`fallen`: the record of an attempt that fell back, whose
    rerun this is: fp32 from the first frame)."""

    def __init__(self, predictor, start: int, fallen: dict | None = None, frames: int | None = None):
        """`frames`: the range's length where known (None: a one-pass read of a video whose length is not)."""
        self.predictor = predictor
        self.candidate = predictor.precision
        self.start = start
        self.path = "fp32" if fallen else self.candidate
        self.every = predictor.infer.precision_sample_every  # the densest sampling; set at the probe's end
        self.sample_share = predictor.infer.precision_sample_share
        self.probe_batches = predictor.infer.precision_probe_batches
        self.pcutoff = predictor.config.project.pcutoff
        self.batches = 0
        # fp32 timed in the probe on the frames the candidate's rechecks left (at most a batch, at fp32's
        # own batch size): what fp32 alone would cost per frame. The sample's fp32 frames (a few per batch:
        # on a GPU far slower per frame than fp32 batched) are the candidate's cost, counted as such (sample_s).
        self.exact_s = self.exact_frames = self.sample_s = 0.0
        self.reduced_s = self.reduced_frames = 0.0  # the candidate timed, rechecks included
        # The sample's agreement as running totals per ensemble member (one for a single model; a long
        # video's sample is never concatenated again): (image, body part) pairs, summed and largest
        # distance, p-cutoff flips. Each member must hold the tolerance on its own: an exact member's
        # zeros must not dilute a reduced one's distances.
        self.sample_images = 0
        self.sample_points = self.sample_flips = self.sample_px_sum = self.sample_px_max = None
        self.rechecked = 0  # the candidate's rechecks on the frames it predicted
        self.probe_frames = self.probe_rechecked_in_fp32 = 0
        self.handed_on = 0  # frames whose candidate poses went to the sink
        self.frames_by_path: dict[str, int] = {}
        self.min_speedup = predictor.infer.precision_min_speedup
        self.speed_decision = ""
        self.why = ""  # why the range went to fp32
        # "poses" (its sample left the tolerance), "speed" (not faster than fp32) or "short" (a range too short)
        self.kind = ""
        self.fallen = fallen
        if not fallen and frames is not None:
            shortest, because = shortest_range(predictor)
            if frames < shortest:
                self._to_fp32("short", f"a range of {frames} frames, too short for the probe to pay off: {because}")

    def predict(self, indices: np.ndarray, frames: np.ndarray) -> np.ndarray:
        if self.path == "fp32":
            self._count("fp32", len(frames))
            return self.predictor.predict_exact(frames)
        if self.batches < self.probe_batches:
            return self._probe(frames)
        return self._run(indices, frames)

    def _count(self, path: str, frames: int) -> None:
        self.frames_by_path[path] = self.frames_by_path.get(path, 0) + frames

    def _timed(self, run, frames: np.ndarray) -> tuple[np.ndarray, float]:
        began = time.perf_counter()
        poses = run(frames)
        return poses, time.perf_counter() - began

    def _probe(self, frames: np.ndarray) -> np.ndarray:
        rechecked = self.predictor.rechecked_frames
        reduced, reduced_s = self._timed(self.predictor.predict, frames)
        self.rechecked += self.predictor.rechecked_frames - rechecked
        # Frames the candidate's rechecks predicted again in fp32 hold fp32's poses already.
        in_fp32 = self.predictor.exact_rows
        others = np.setdiff1d(np.arange(len(frames)), in_fp32)
        exact, exact_s = reduced.copy(), 0.0
        if len(others):
            exact[others], exact_s = self._timed(self.predictor.predict_exact, frames[others])
        elif self.batches:  # every frame reused: fp32 is timed on one of them all the same
            others = np.arange(1)
            exact_s = self._timed(self.predictor.predict_exact, frames[:1])[1]
        self.probe_frames += len(frames)
        self.probe_rechecked_in_fp32 += len(in_fp32)
        if self.batches:  # the first batch warms both paths up (kernels, ONNX Runtime's arenas)
            self.exact_s, self.exact_frames = self.exact_s + exact_s, self.exact_frames + len(others)
            self.reduced_s, self.reduced_frames = self.reduced_s + reduced_s, self.reduced_frames + len(frames)
        self.batches += 1
        self._compare(exact, reduced)
        self._count("fp32", len(frames))
        if not self._within():
            self._to_fp32("poses", f"its poses on the first frames left the tolerance ({self.agreement().describe()})")
        elif self.probe_rechecked_in_fp32 * self.min_speedup > self.probe_frames:
            # Each such frame cost fp32's time and the candidate's on top: it cannot be faster.
            self.speed_decision = (f"{self.probe_rechecked_in_fp32} of its first {self.probe_frames} frames were "
                                   f"predicted again in fp32 by its rechecks: not faster than fp32")
            self._to_fp32("speed", self.speed_decision)
        elif self.exact_frames and self.reduced_frames:
            # After each timed batch: a candidate clearly slower ends the probe there; at its last batch,
            # one not faster.
            self.every = self._sample_interval()
            last = self.batches == self.probe_batches
            if not self._faster(1.0 if last else CLEARLY_SLOWER):
                self._to_fp32("speed", self.speed_decision)
        return exact

    def _sample_interval(self) -> int:
        """precision_sample_every, or sparser so that the fp32 sample costs at most precision_sample_share
        of the candidate's time per frame (as the probe timed both)."""
        if not self.exact_frames or not self.reduced_frames:
            return self.every
        ratio = (self.exact_s / self.exact_frames) / (self.reduced_s / self.reduced_frames)
        return max(self.every, math.ceil(ratio / self.sample_share))

    def _run(self, indices: np.ndarray, frames: np.ndarray) -> np.ndarray:
        rechecked = self.predictor.rechecked_frames
        poses, spent = self._timed(self.predictor.predict, frames)
        self.rechecked += self.predictor.rechecked_frames - rechecked
        self.reduced_s, self.reduced_frames = self.reduced_s + spent, self.reduced_frames + len(frames)
        pick = (indices - self.start) % self.every == self.every // 2
        if pick.any():
            exact, spent = self._timed(self.predictor.predict_exact, frames[pick])
            self.sample_s += spent
            self._compare(exact, poses[pick])
        self._count(self.candidate, len(frames))
        self.handed_on += len(frames)
        if not self._within():
            self.kind, self.why = "poses", f"the sample of this video left the tolerance ({self.agreement().describe()})"
            log.warning("%s: %s; predicting it again in fp32", self._name(), self.why)
            raise FallBack(self.record())
        if self.reduced_frames >= MIN_FRAMES_FOR_SPEED and not self._faster():
            self._to_fp32("speed", self.speed_decision)
        return poses

    def _compare(self, exact: np.ndarray, reduced: np.ndarray) -> None:
        exact, reduced = (np.asarray(poses, dtype=np.float64) for poses in (exact, reduced))
        if exact.ndim == 3:  # (images, body parts, 3): one member
            exact, reduced = exact[:, None], reduced[:, None]
        distance = np.linalg.norm(reduced[..., :2] - exact[..., :2], axis=-1)  # (images, members, body parts)
        flips = (reduced[..., 2] >= self.pcutoff) != (exact[..., 2] >= self.pcutoff)
        if self.sample_points is None:
            members = exact.shape[1]
            self.sample_points, self.sample_flips = np.zeros(members, np.int64), np.zeros(members, np.int64)
            self.sample_px_sum, self.sample_px_max = np.zeros(members), np.zeros(members)
        self.sample_images += len(exact)
        self.sample_points += distance.shape[0] * distance.shape[2]
        self.sample_px_sum += distance.sum(axis=(0, 2))
        self.sample_px_max = np.maximum(self.sample_px_max, distance.max(axis=(0, 2)))
        self.sample_flips += flips.sum(axis=(0, 2))

    def agreement(self) -> Agreement | None:
        """The sample's agreement: an ensemble's worst member's (the one furthest outside, or nearest the
        edge of, the tolerance)."""
        if not self.sample_images:
            return None
        mean, flips = self.sample_px_sum / self.sample_points, self.sample_flips / self.sample_points
        worst = int(np.argmax(np.maximum(mean / MAX_MEAN_PX, flips / MAX_FLIP_SHARE)))
        return Agreement(images=self.sample_images, mean_px=float(mean[worst]), max_px=float(self.sample_px_max[worst]),
                         flip_share=float(flips[worst]), pcutoff=float(self.pcutoff))

    def _within(self) -> bool:
        found = self.agreement()
        return found is None or (found.mean_px <= MAX_MEAN_PX and found.flip_share <= MAX_FLIP_SHARE)

    def _faster(self, slack: float = 1.0) -> bool:
        """Whether the candidate, its rechecks and the fp32 sample cost less per frame than fp32 alone
        (by precision_min_speedup; with `slack` > 1, whether it is not slower than that by `slack`)."""
        if not self.exact_frames or not self.reduced_frames:
            return True  # nothing timed yet (a probe of one batch): the poses decide
        exact = self.exact_s / self.exact_frames
        candidate = (self.reduced_s / self.reduced_frames + exact / self.every if not self.sample_s
                     else (self.reduced_s + self.sample_s) / self.reduced_frames)  # the sample as estimated, then as spent
        faster = exact * slack >= self.min_speedup * candidate
        self.speed_decision = (f"{self.candidate} {1 / candidate:.2f} frames/s (rechecks and a 1-in-{self.every} "
                               f"fp32 sample included) vs fp32 {1 / exact:.2f} frames/s: "
                               f"{'faster' if faster else 'not faster'}")
        return faster

    def _to_fp32(self, kind: str, why: str) -> None:
        self.path, self.kind, self.why = "fp32", kind, why
        log.info("%s: fp32 for the rest of this range: %s", self._name(), why)

    def _name(self) -> str:
        return f"frames from {self.start}"

    def record(self) -> dict:
        """For _meta.json: the candidate, the timings, the sample and its agreement, and whether (why) the
        range went to fp32."""
        found = self.agreement()
        record = {
            "candidate": self.candidate, "start": self.start, "final_path": self.path,
            "fp32_frames_timed": int(self.exact_frames),
            "fp32_fps": self.exact_frames / self.exact_s if self.exact_s else None,
            "candidate_fps": self.reduced_frames / self.reduced_s if self.reduced_s else None,
            "candidate_rechecked_frames": self.rechecked, "speed": self.speed_decision, "sample_seconds": self.sample_s,
            "sample_every": self.every, "sample_frames": int(found.images) if found else 0,
            "sample_mean_px": found.mean_px if found else None, "sample_max_px": found.max_px if found else None,
            "sample_flip_share": found.flip_share if found else None,
            "sample_within_tolerance": self._within(), "fell_back": bool(self.fallen) or self.kind == "poses",
            "slower_than_fp32": self.kind == "speed", "range_too_short": self.kind == "short",
            "probe_frames": self.probe_frames, "probe_frames_rechecked_in_fp32": self.probe_rechecked_in_fp32,
            "why": self.why, "frames_by_path": dict(self.frames_by_path),
        }
        if self.fallen:  # this is the rerun: what the first attempt found, and what it predicted again
            record.update({key: self.fallen[key] for key in ("fp32_fps", "candidate_fps", "candidate_rechecked_frames",
                                                             "speed", "sample_frames", "sample_mean_px", "sample_max_px",
                                                             "sample_flip_share", "why", "start", "probe_frames",
                                                             "probe_frames_rechecked_in_fp32")})
            record["sample_within_tolerance"] = False
            record["repredicted_frames"] = self.fallen["handed_on"]
        record["handed_on"] = self.handed_on
        return record
