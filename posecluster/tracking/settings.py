"""Tracking parameters: frame-to-frame linking and stitching tracklets into the project's individuals.

Distances are mean keypoint distances in pixels of the original video; every other cost is expressed in
the same pixels so the numbers can be compared (an identity disagreement "costs" so many pixels).
"""

from __future__ import annotations

from pydantic import Field

from posecluster.config import Section


class TrackingConfig(Section):
    # Body parts whose likelihood is below this (or NaN) take no part in any distance.
    min_likelihood: float = Field(0.1, ge=0, le=1)
    # Frame to frame: two detections in consecutive frames are linked only if their mean keypoint distance
    # (the earlier one moved on by its velocity) plus the identity cost is below this. Keep it near a few
    # times the detection noise: a link that should not be made (the animal missed, another one near)
    # is never undone, while a link not made is a gap that stitching bridges.
    max_link_px: float = Field(15.0, gt=0)
    # Cost of total identity disagreement (dot product 0 of the identity-head probabilities); used only
    # where detections carry identity scores (a project with identity: true).
    identity_weight_px: float = Field(30.0, ge=0)
    # Stitching: a tracklet may continue another directly across at most this many missing frames.
    max_gap_frames: int = Field(60, ge=1)
    # A tracklet's velocity (its mean step over its first or last few detections) carries its pose over
    # a gap for at most this many frames; beyond that the animal is as likely to have stopped.
    velocity_horizon_frames: int = Field(8, ge=0)
    # ... and each missing frame adds this to the distance between the predicted and the found pose.
    gap_px_per_frame: float = Field(1.0, ge=0)
    # Reward for every detection a track takes (a tracklet worth keeping), and the cost of a track starting
    # afresh (an animal entering, or an unexplained jump): a tracklet taken on its own needs at least
    # enter_px / detection_reward_px detections, so short false positives are dropped.
    detection_reward_px: float = Field(10.0, gt=0)
    enter_px: float = Field(60.0, ge=0)
    # An animal reappearing after an absence goes to the absent individual whose last pose is nearest;
    # an individual never seen yet stands at this distance from everything.
    new_individual_px: float = Field(100.0, ge=0)
