"""One typed configuration tree, parsed at the edge; every component is built from its own section.

Defaults are the DeepLabCut values (paper and DLC 3.0 PyTorch recipe). Sizes derived from others (heads'
channel counts from the number of body parts, output grid from the input) are computed in code, never
written here. YAML in and out; the resolved config is written beside every checkpoint and output.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from posecluster import storage
from posecluster.errors import InputError


class ConfigYamlLoader(yaml.SafeLoader):
    """YAML for config files and --set values, where each value is then read by its field's type.

    PyYAML follows YAML 1.1, where `off`/`on`/`yes`/`no` are booleans and `2024-01-01` a date: a
    string-enum field (`mixed_precision: off`, `freeze_batchnorm: no`) would receive False. Here only
    true/false are booleans (YAML 1.2) and dates stay text; a bool field still takes `off`/`no`/`yes`/`on`,
    because pydantic reads those words as booleans for a bool field."""


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
ConfigYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigYamlLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str | bytes):
    """A config file's or a --set value's YAML (ConfigYamlLoader); yaml.YAMLError when it is not YAML."""
    return yaml.load(text, Loader=ConfigYamlLoader)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)

    def with_overrides(self, overrides: dict, source: str = "overrides"):
        """A copy with nested overrides applied, e.g. {"train": {"epochs": 5}}; validated again. A bad value
        is an InputError naming `source`, the field and what is allowed."""
        merged = deep_merge(self.model_dump(mode="json"), overrides)
        return validated(type(self), merged, source)


def validated(cls, raw, source: str):
    """cls.model_validate(raw), with a failure turned into one line: file, field = value, allowed range."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise InputError(source, describe_errors(cls, exc)) from None


def describe_errors(cls, exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        text = f"{field} = {error['input']!r}: {message}" if field else message
        allowed = _allowed(cls, error["loc"])
        if allowed:
            text += f" (allowed: {allowed})"
        parts.append(text)
    return "; ".join(parts)


_BOUNDS = ((annotated_types.Gt, ">", "gt"), (annotated_types.Ge, ">=", "ge"),
           (annotated_types.Lt, "<", "lt"), (annotated_types.Le, "<=", "le"))


def _allowed(cls, loc) -> str:
    """The numeric range declared on the field at `loc` ("> 0", ">= 0, <= 1"), or ''."""
    field = None
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list/tuple field: the field's item constraints apply
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or part not in cls.model_fields:
            return ""
        field = cls.model_fields[part]
        cls = field.annotation
    if field is None:
        return ""
    constraints = list(field.metadata)
    for arg in getattr(field.annotation, "__args__", ()):  # list[Annotated[float, Field(...)]] items
        for item in getattr(arg, "__metadata__", ()):
            constraints += [item, *getattr(item, "metadata", ())]
    found = [f"{sign} {getattr(c, attr)}" for c in constraints for kind, sign, attr in _BOUNDS if isinstance(c, kind)]
    return ", ".join(dict.fromkeys(found))


def _ordered_pair(name: str, value: tuple[float, float], positive: bool = False) -> tuple[float, float]:
    low, high = value
    if low > high or (positive and low <= 0):
        need = "0 < low <= high" if positive else "low <= high"
        raise ValueError(f"{name} must be (low, high) with {need}, got {value}")
    return value


Fraction = Annotated[float, Field(gt=0, le=1)]
Probability = Annotated[float, Field(ge=0, le=1)]

# The individual under which DeepLabCut's multi-animal tables keep unique body parts.
UNIQUE_INDIVIDUAL = "single"


class ProjectConfig(Section):
    """What a DeepLabCut project's config.yaml says about the data."""

    task: str = "project"
    scorer: str = "scorer"
    date: str = ""
    bodyparts: list[str] = Field(default_factory=list)
    skeleton: list[list[str]] = Field(default_factory=list)
    training_fractions: list[Fraction] = Field(default_factory=lambda: [0.95])
    pcutoff: float = Field(0.6, ge=0, le=1)
    iteration: int = Field(0, ge=0)
    # maDLC (multianimalproject: true): `bodyparts` holds multianimalbodyparts, each labeled once per
    # individual; unique body parts (a landmark, a feeder) appear once per frame, under DLC's "single".
    multianimal: bool = False
    individuals: list[str] = Field(default_factory=list)
    unique_bodyparts: list[str] = Field(default_factory=list)
    # Animals that look different (an identity head is worth training); DLC writes null for single-animal.
    identity: bool | None = None

    @field_validator("task", "scorer", "date")
    @classmethod
    def _file_name_piece(cls, value: str) -> str:
        # These become parts of file names (CollectedData_<scorer>.h5, <video>DLC_..._<Task><date>...h5):
        # a config.yaml written by someone else must not steer a write into another folder.
        if value in (".", "..") or any(ch in value for ch in "/\\") or any(ord(ch) < 32 for ch in value):
            raise ValueError(f"{value!r} must be usable in a file name (no '/', '\\', control characters)")
        return value

    @field_validator("bodyparts", "individuals", "unique_bodyparts")
    @classmethod
    def _unique_names(cls, value: list[str], info) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{info.field_name} must be unique, got {value}")
        return value

    @model_validator(mode="after")
    def _multianimal_names(self) -> "ProjectConfig":
        if not self.multianimal:
            if self.individuals or self.unique_bodyparts:
                raise ValueError("individuals and unique_bodyparts belong to a multi-animal project")
            return self
        if not self.individuals:
            raise ValueError("a multi-animal project needs at least one individual")
        if UNIQUE_INDIVIDUAL in self.individuals:
            raise ValueError(f"'{UNIQUE_INDIVIDUAL}' is DeepLabCut's column for unique body parts, not an individual")
        shared = sorted(set(self.bodyparts) & set(self.unique_bodyparts))
        if shared:
            raise ValueError(f"body parts {shared} are both multianimalbodyparts and uniquebodyparts")
        return self

    @property
    def all_bodyparts(self) -> list[str]:
        """Every body part a frame can hold: the per-animal ones, then the unique ones (DLC's order)."""
        return [*self.bodyparts, *self.unique_bodyparts]

    @classmethod
    def from_dlc(cls, raw: dict, source: str) -> "ProjectConfig":
        """Read the fields posecluster uses; placeholders such as project_path/video_sets are ignored."""
        if not isinstance(raw, dict):
            raise InputError(source, "not a YAML mapping")
        multianimal = bool(raw.get("multianimalproject"))
        parts_key = "multianimalbodyparts" if multianimal else "bodyparts"
        bodyparts = raw.get(parts_key)
        if not bodyparts or not isinstance(bodyparts, list):
            raise InputError(source, f"'{parts_key}' must be a non-empty list")
        fractions = raw.get("TrainingFraction", [0.95])
        # Values go to the validators as DeepLabCut wrote them (pcutoff: null, iteration: "two" included),
        # so a bad one is reported as config.yaml's field with its allowed range, not as a TypeError.
        fields = {
            "task": str(raw.get("Task") or "project"),
            "scorer": str(raw.get("scorer") or "scorer"),
            "date": str(raw.get("date") or ""),
            "bodyparts": [str(b) for b in bodyparts],
            "skeleton": [list(map(str, pair)) for pair in (raw.get("skeleton") or [])],
            "training_fractions": fractions if isinstance(fractions, list) else [fractions],
            "pcutoff": raw.get("pcutoff", 0.6),
            "iteration": raw.get("iteration", 0),
        }
        if multianimal:
            fields.update(multianimal=True, identity=bool(raw.get("identity")),
                          individuals=_name_list(raw.get("individuals"), "individuals", source),
                          unique_bodyparts=_name_list(raw.get("uniquebodyparts"), "uniquebodyparts", source))
        dlc_names = {"task": "Task", "training_fractions": "TrainingFraction", "unique_bodyparts": "uniquebodyparts"}
        if multianimal:
            dlc_names["bodyparts"] = "multianimalbodyparts"
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            message = describe_errors(cls, exc)
            for ours, theirs in dlc_names.items():
                message = re.sub(rf"\b{ours}\b", theirs, message)
            raise InputError(source, message) from None

    def to_dlc(self) -> dict:
        # Keys in the order DeepLabCut's templates write them; a maDLC project says bodyparts: MULTI!
        names = {"bodyparts": list(self.bodyparts)}
        if self.multianimal:
            names = {"individuals": list(self.individuals), "uniquebodyparts": list(self.unique_bodyparts),
                     "multianimalbodyparts": list(self.bodyparts), "bodyparts": "MULTI!"}
        return {
            "Task": self.task,
            "scorer": self.scorer,
            "date": self.date,
            "multianimalproject": self.multianimal,
            "identity": bool(self.identity) if self.multianimal else None,
            "project_path": "",
            "video_sets": {},
            **names,
            "start": 0,
            "stop": 1,
            "numframes2pick": 20,
            "skeleton": [list(p) for p in self.skeleton],
            "pcutoff": self.pcutoff,
            "TrainingFraction": list(self.training_fractions),
            "iteration": self.iteration,
            "default_net_type": "resnet_50",
            "engine": "pytorch",
        }


def _name_list(value, key: str, source: str) -> list[str]:
    """A list of names from a maDLC config.yaml (DLC writes an empty one as [] or leaves it null)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(source, f"'{key}' must be a list of names, got {value!r}")
    return [str(v) for v in value]


class BackboneConfig(Section):
    name: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet50"
    # "none" (random init), "imagenet" (torchvision's file under TORCH_HOME), or any URI to a state dict.
    weights: str = "imagenet"
    # Dilate the last stage instead of striding: backbone stride 16 as in the paper.
    dilate_last_stage: bool = True
    # Keep BatchNorm statistics fixed (DLC's choice for ImageNet-initialised backbones); from scratch,
    # batch statistics must be learned, so the default follows the weights.
    freeze_batchnorm: Literal["auto", "yes", "no"] = "auto"

    def batchnorm_frozen(self) -> bool:
        return self.freeze_batchnorm == "yes" or (self.freeze_batchnorm == "auto" and self.weights != "none")


class TargetConfig(Section):
    # "disk": the paper's score maps (radius epsilon) with sigmoid cross-entropy;
    # "gaussian": DLC 3.0's Gaussian heatmaps with a mean squared error.
    kind: Literal["disk", "gaussian"] = "disk"
    # A body part not labeled in an image: "mask" leaves it out of the score-map loss (DeepLabCut 3.0);
    # "absent" trains a zero score map for it (DeepLabCut 2.x), pushing its likelihood down where it is
    # occluded, so the p-cutoff separates visible from hidden parts as 2.x users expect.
    unlabeled: Literal["mask", "absent"] = "mask"
    radius_px: float = Field(17.0, gt=0)
    gaussian_sigma_px: float = Field(8.5, gt=0)
    locref_stdev: float = Field(7.2801, gt=0)


class LossConfig(Section):
    locref_weight: float = Field(0.05, ge=0)
    huber_delta: float = Field(1.0, gt=0)


class ModelConfig(Section):
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    # Images are scaled by this before the network, in training and in inference alike.
    global_scale: float = Field(0.8, gt=0, le=4)
    locref: bool = True


class AugmentConfig(Section):
    enabled: bool = True
    scale_range: tuple[float, float] = (0.5, 1.25)
    rotation_deg: float = Field(25.0, ge=0, le=180)
    # Fixed crop (width, height) in network-input pixels so batches stack; None keeps the whole image.
    crop_size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = (448, 448)
    # How far the crop centre may wander from the animal's centre, as a fraction of the crop size.
    crop_jitter: float = Field(0.4, ge=0)
    blur_probability: Probability = 0.2
    blur_sigma_range: tuple[float, float] = (0.5, 2.0)
    contrast_probability: Probability = 0.3
    contrast_range: tuple[float, float] = (0.6, 1.4)
    brightness_range: tuple[float, float] = (0.8, 1.2)

    @field_validator("scale_range", "blur_sigma_range", "contrast_range", "brightness_range")
    @classmethod
    def _low_high(cls, value: tuple[float, float], info) -> tuple[float, float]:
        return _ordered_pair(info.field_name, value, positive=True)


class LrStep(Section):
    """From this fraction of all training steps on, use this learning rate."""

    from_fraction: float = Field(ge=0, lt=1)
    lr: float = Field(gt=0)


class OptimizerConfig(Section):
    name: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    # DLC 3.0 recipe: 5e-4, then 1e-4 at epoch 160 of 200 and 1e-5 at epoch 190.
    schedule: list[LrStep] = Field(
        default_factory=lambda: [
            LrStep(from_fraction=0.0, lr=5e-4),
            LrStep(from_fraction=0.8, lr=1e-4),
            LrStep(from_fraction=0.95, lr=1e-5),
        ]
    )

    @model_validator(mode="after")
    def _schedule_starts_at_zero(self) -> "OptimizerConfig":
        fractions = [s.from_fraction for s in self.schedule]
        if not fractions or fractions[0] != 0.0 or fractions != sorted(fractions):
            raise ValueError("optimizer.schedule must start at from_fraction 0.0 and increase")
        return self

    @classmethod
    def paper_sgd(cls) -> "OptimizerConfig":
        """The paper's SGD schedule (0.005 → 0.02 → 0.002 → 0.001 over 1.03M iterations), as fractions."""
        return cls(
            name="sgd",
            weight_decay=1e-4,
            schedule=[
                LrStep(from_fraction=0.0, lr=0.005),
                LrStep(from_fraction=0.0097, lr=0.02),
                LrStep(from_fraction=0.4175, lr=0.002),
                LrStep(from_fraction=0.7087, lr=0.001),
            ],
        )


class SplitConfig(Section):
    training_fraction: float = Field(0.95, gt=0, le=1)
    shuffle: int = Field(1, ge=0)


class TrainConfig(Section):
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(8, ge=1)
    seed: int = 42
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    # "auto": autocast where the hardware runs it fast (CUDA; a CPU with bf16 instructions: bf16), with
    # the heads, loss and decoding in fp32; "on"/"off" force it (model.precision decides and records it).
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    # "auto": channels_last on CUDA and on CPUs with bf16 instructions (where oneDNN's kernels want it).
    channels_last: Literal["auto", "on", "off"] = "auto"
    # After training: calibrate an int8 version of the backbone on up to this many of the project's
    # labeled frames (0: none) and check bf16 and int8 poses against fp32 (model.quantize).
    int8_calibration_images: int = Field(64, ge=0)
    # ...and on this many frames spread over the project's videos/ (0: labeled images only).
    precision_check_video_frames: int = Field(100, ge=0)
    loader_workers: int = Field(0, ge=0)
    checkpoint_every_epochs: int = Field(10, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    device: str = "auto"
    progress: bool = True
    # Data parallel: scale the learning rate with the global batch (sqrt(W) for AdamW, W for SGD).
    scale_lr_with_workers: bool = True


class TrackingConfig(Section):
    """Multi-animal tracking (infer.tracking): frame-to-frame linking and stitching tracklets into the
    project's individuals, as maDLC's inference_cfg.yaml holds them per model. Distances are mean keypoint
    distances in pixels of the original video; every other cost is expressed in the same pixels so the
    numbers can be compared (an identity disagreement "costs" so many pixels). Single-animal models ignore it."""

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
    # Stitching solves the video in windows of this many frames, each deciding its own tracklets while
    # seeing on to the end of the longest of them (and max_gap_frames beyond), but at most
    # stitch_lookahead_frames past its end: memory stays that of a window and its lookahead however long the
    # video. A tracklet longer than the lookahead (a false animal detected for minutes) is kept without
    # being weighed against every later one; raise both past the video's length for one global solve.
    stitch_window_frames: int = Field(1000, ge=1)
    stitch_lookahead_frames: int = Field(5000, ge=1)

    def linking_settings(self) -> dict:
        """The settings frame-to-frame linking reads (tracking.linking): what stored tracklets depend on;
        the others only change how they are stitched."""
        return {name: getattr(self, name) for name in ("min_likelihood", "max_link_px", "identity_weight_px")}


class InferConfig(Section):
    # "auto": what is fastest for the device (model.precision.default_batch_size); an int forces it.
    batch_size: Union[Literal["auto"], Annotated[int, Field(ge=1)]] = "auto"
    # Output formats besides the DLC .h5, which is always written.
    extra_formats: list[Literal["csv", "parquet"]] = Field(default_factory=list)
    decode_threads: int = Field(0, ge=0)  # 0: let FFmpeg choose
    queue_batches: int = Field(4, ge=1)
    device: str = "auto"
    # "auto": the fastest path whose poses match fp32 on this model (model.precision.choose_inference):
    # on CUDA autocast; on a CPU int8 (a calibrated version that passed its pose check, VNNI/AMX), else
    # bf16 (bf16 instructions), else fp32. "on": autocast (bf16 on CPU), "off": fp32, "int8": the
    # calibrated int8 backbone. The path that ran is in the log and in _meta.json.
    mixed_precision: Literal["auto", "on", "off", "int8"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    # auto's reduced path is checked on each video as it runs (infer.verify): its first batches are also
    # predicted (and timed) in fp32, then every precision_sample_every-th frame, or sparser where that
    # fp32 sample would cost more than precision_sample_share of the reduced path's own time.
    precision_probe_batches: int = Field(3, ge=1)
    precision_sample_every: int = Field(25, ge=1)
    precision_sample_share: float = Field(0.05, gt=0)
    # ... and goes on only while fp32's time per frame over its own (rechecks and sample included) is at
    # least this; 0 checks the poses alone.
    precision_min_speedup: float = Field(1.05, ge=0)
    # A range (a video, an archive segment) shorter than this runs fp32 under auto: the probe's frames run
    # both ways, and on a short clip that can cost more than the reduced path saves on the rest. auto:
    # from the path's calibrated speed-up, the shortest range on which the probe's worst cost is at most
    # precision_probe_cost_share of what that speed-up saves (RANGE_WITHOUT_SPEED frames where the path
    # was not timed on a machine like this one); a number: that minimum (0 checks every range).
    precision_min_range_frames: Union[Literal["auto"], Annotated[int, Field(ge=0)]] = "auto"
    precision_probe_cost_share: float = Field(0.1, gt=0, le=1)
    # How a multi-animal model's detections are linked and stitched (part of what its stored tracklets
    # and a job's request were made with).
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    # A multi-animal video analysed in one process is predicted, linked and stored this many frames at a
    # time (or fewer, to cut at a keyframe): memory holds one piece, however long the video. The tracked
    # table does not depend on it (nor does a stored file's key). Pieces much shorter cost a decoder start each.
    multianimal_piece_frames: int = Field(1000, ge=10)


class TemporalLossConfig(Section):
    """Lightning Pose's temporal-difference loss: consecutive frames' soft-argmax positions (original
    pixels) that move more than epsilon_px are penalised by the excess; parts whose confidence is below
    prob_threshold in either frame are left out. Weight = 1 / (2 exp(log_weight)), as in Lightning Pose."""

    kind: Literal["temporal"] = "temporal"
    log_weight: float = 5.0  # Lightning Pose's published configs (Biderman et al. 2024)
    epsilon_px: float = Field(20.0, ge=0)
    prob_threshold: float = Field(0.05, ge=0, le=1)


class PcaLossConfig(Section):
    """Lightning Pose's Pose-PCA loss: the distance (per body part, original pixels) between a predicted
    pose and its projection onto the PCA subspace of the labeled poses, beyond epsilon_px."""

    kind: Literal["pca"] = "pca"
    log_weight: float = 5.0
    # Components explaining this fraction of the labels' variance (or an integer count >= 1).
    components_to_keep: float = Field(0.99, gt=0)
    # None: the empirical_percentile-th percentile of the labeled poses' own reprojection errors.
    epsilon_px: float | None = None
    empirical_percentile: float = Field(99.0, ge=0, le=100)


UnsupervisedLossConfig = Annotated[Union[TemporalLossConfig, PcaLossConfig], Field(discriminator="kind")]


class AnnealConfig(Section):
    """Lightning Pose's AnnealWeight (its defaults): the unsupervised losses' total importance is `initial`
    through epoch `hold_epochs` (0-based), then rises by `per_epoch` each epoch up to `final`. Starting at
    0 lets the supervised loss shape the score maps before the losses judge what they predict."""

    initial: float = Field(0.0, ge=0)
    per_epoch: float = Field(0.01, ge=0)
    final: float = Field(1.0, ge=0)
    hold_epochs: int = Field(0, ge=0)


class UnsupervisedConfig(Section):
    """Losses on unlabeled clips of consecutive frames, besides the supervised loss. Off (no losses) by
    default; e.g. --set 'unsupervised.losses=[{kind: temporal}, {kind: pca}]'."""

    losses: list[UnsupervisedLossConfig] = Field(default_factory=list)
    # Video URIs, folders or prefixes to draw clips from; empty: the project's own videos/ folder.
    videos: list[str] = Field(default_factory=list)
    clip_frames: int = Field(4, ge=2)
    clips_per_step: int = Field(1, ge=1)
    # Soft-argmax over the score-map logits divided by this (smaller: closer to the hard argmax).
    softargmax_temperature: float = Field(1.0, gt=0)
    anneal: AnnealConfig = Field(default_factory=AnnealConfig)


class PoseclusterConfig(Section):
    # Where the labeled project lives (set by training; lets evaluation find it again).
    project_uri: str = ""
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    infer: InferConfig = Field(default_factory=InferConfig)
    unsupervised: UnsupervisedConfig = Field(default_factory=UnsupervisedConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "<config>") -> "PoseclusterConfig":
        try:
            raw = load_yaml(text) or {}
        except yaml.YAMLError as exc:
            raise InputError(source, f"not valid YAML: {exc}") from None
        return validated(cls, raw, source)

    @classmethod
    def load(cls, uri: str) -> "PoseclusterConfig":
        return cls.from_yaml_text(storage.read_bytes(uri).decode(), source=uri)

    def save(self, uri: str) -> None:
        storage.atomic_write_bytes(uri, self.to_yaml().encode())


def deep_merge(base: dict, extra: dict) -> dict:
    """`base` with `extra`'s values, nested mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
