"""posecluster.api: what analysis settings a command line or a config file hands on."""

from __future__ import annotations

from posecluster import api
from posecluster.config import InferConfig, TrackingConfig


def test_a_nested_analysis_setting_carries_only_what_was_set(tmp_path):
    config = tmp_path / "analysis.yaml"
    config.write_text("infer:\n  tracking:\n    max_gap_frames: 30\n  mixed_precision: off\n")
    overrides = api.infer_overrides(str(config), api.parse_overrides(["infer.tracking.enter_px=45"]))
    # Each value as its field reads it ("off" a string, 45 a float), and none of tracking's defaults: a
    # model's own tracking settings stay where the command did not set them.
    assert overrides == {"tracking": {"max_gap_frames": 30, "enter_px": 45.0}, "mixed_precision": "off"}
    model_infer = InferConfig(tracking=TrackingConfig(max_link_px=25.0, max_gap_frames=10))
    tracking = model_infer.with_overrides(overrides).tracking
    assert (tracking.max_link_px, tracking.max_gap_frames, tracking.enter_px) == (25.0, 30, 45.0)
