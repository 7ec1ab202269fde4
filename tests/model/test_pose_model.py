"""Backbone stride 16 (dilated last stage), heads at stride 8, and pretrained-weight loading mechanics."""

from __future__ import annotations

import io

import pytest
import torch
from torchvision import models

from posecluster import storage
from posecluster.config import BackboneConfig, ModelConfig
from posecluster.model.backbone import ResNetBackbone
from posecluster.model.pose_model import PoseModel
from posecluster.model.weights import WeightsUnavailable, imagenet_file, load_backbone_weights


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_backbone_stride_is_16_and_heads_give_stride_8(name):
    model = PoseModel(ModelConfig(backbone=BackboneConfig(name=name, weights="none")), num_bodyparts=3).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 96))
    assert model.backbone.stride == 16 and model.stride == 8
    assert out["scoremap"].shape == (1, 3, 8, 12)
    assert out["locref"].shape == (1, 6, 8, 12)


def test_last_stage_is_dilated_not_strided():
    backbone = ResNetBackbone(BackboneConfig(name="resnet50", weights="none"))
    convs = [m for m in backbone.layer4.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.stride == (1, 1) for c in convs)
    assert any(c.dilation == (2, 2) for c in convs)


def _reference_state() -> dict:
    torch.manual_seed(1)
    return models.resnet18(weights=None).state_dict()


def test_state_dict_uri_initialises_the_backbone(tmp_path, s3_bucket):
    state = _reference_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    for uri in (str(tmp_path / "r18.pt"), f"{s3_bucket}/weights/r18.pt"):
        storage.atomic_write_bytes(uri, buffer.getvalue())
        backbone = ResNetBackbone(BackboneConfig(name="resnet18"))
        load_backbone_weights(backbone, uri, "resnet18")
        assert torch.equal(backbone.stem[0].weight, state["conv1.weight"])
        assert torch.equal(backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_imagenet_weights_are_read_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, _ = imagenet_file("resnet18")
    assert path.startswith(str(tmp_path))
    state = _reference_state()
    import os

    os.makedirs(os.path.dirname(path))
    torch.save(state, path)
    backbone = ResNetBackbone(BackboneConfig(name="resnet18"))
    assert "ImageNet" in load_backbone_weights(backbone, "imagenet", "resnet18")
    assert torch.equal(backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_missing_imagenet_weights_offline_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable, match=r"resnet18-[0-9a-f]+\.pth"):
        load_backbone_weights(ResNetBackbone(BackboneConfig(name="resnet18")), "imagenet", "resnet18")


def test_a_state_dict_of_another_architecture_is_refused(tmp_path):
    uri = str(tmp_path / "r50.pt")
    torch.save(models.resnet50(weights=None).state_dict(), uri)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_backbone_weights(ResNetBackbone(BackboneConfig(name="resnet18")), uri, "resnet18")


def test_folding_batchnorm_keeps_the_outputs():
    from posecluster.model.backbone import fold_batchnorm

    torch.manual_seed(0)
    model = PoseModel(ModelConfig(backbone=BackboneConfig(name="resnet18", weights="none")), num_bodyparts=2)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # give BatchNorm non-trivial running statistics
            model(torch.rand(4, 3, 64, 64))
    model.eval()
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        before = model(x)
        fold_batchnorm(model.backbone)
        after = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after["scoremap"], before["scoremap"], rtol=1e-4, atol=1e-4)


def test_heads_and_decoding_stay_fp32_under_bf16_autocast():
    from posecluster.model.decode import decode

    torch.manual_seed(0)
    model = PoseModel(ModelConfig(backbone=BackboneConfig(name="resnet18", weights="none")), num_bodyparts=4).eval()
    images = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        reference = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(images)
    scoremap = mixed["scoremap"]
    assert scoremap.dtype == torch.float32 and mixed["locref"].dtype == torch.float32
    # No plateau: every map has a single maximum, so the argmax (the predicted cell) is well defined.
    flat = scoremap.flatten(2)
    assert ((flat == flat.max(dim=-1, keepdim=True).values).sum(-1) == 1).all()
    # The bf16 backbone moves values a little; decoding in fp32 keeps the peaks where fp32 puts them.
    poses = decode(scoremap, mixed["locref"], model.stride, 7.2801)
    expected = decode(reference["scoremap"], reference["locref"], model.stride, 7.2801)
    assert (poses[..., :2] - expected[..., :2]).abs().max() < model.stride


def test_a_confined_job_reads_the_servers_imagenet_weights_and_nothing_else_there(tmp_path, monkeypatch):
    """A lab's job (confined to its folder) starts from the server's ImageNet file in TORCH_HOME, which lies
    outside every lab's scope: read, never written, and no other location is opened up by it."""
    import os

    from posecluster import storage
    from posecluster.storage.scope import OutOfScopeError, Scope, confined

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path, _ = imagenet_file("resnet18")
    os.makedirs(os.path.dirname(path))
    torch.save(_reference_state(), path)
    (tmp_path / "lab").mkdir()
    with confined(Scope.of([str(tmp_path / "lab")])):
        backbone = ResNetBackbone(BackboneConfig(name="resnet18"))
        assert "ImageNet" in load_backbone_weights(backbone, "imagenet", "resnet18")
        with pytest.raises(OutOfScopeError):
            storage.exists(path)  # only while the weights are looked up
