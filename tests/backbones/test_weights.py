"""Local weight files (`backbones.weights`): a timm architecture needs weights named; a safetensors file is
loaded, one of another architecture refused, and a pickled file refused without being unpickled."""

from __future__ import annotations

import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.errors import BackboneError


def test_timm_architecture_needs_explicit_weights() -> None:
    with pytest.raises(BackboneError, match="weights='random'"):
        create_backbone("resnet18")


def test_timm_architecture_from_local_file(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False, num_classes=7)
    path = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(path))
    backbone = create_backbone("resnet18", weights=str(path))
    assert backbone.num_features == 512
    assert backbone.source_head is not None and backbone.source_head.out_features == 7
    assert len(backbone.weights_id) == 64
    assert torch.equal(backbone.model.conv1.weight, source.conv1.weight)


def test_weight_file_that_does_not_match_is_refused(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file(timm.create_model("resnet10t", pretrained=False).state_dict(), str(path))
    with pytest.raises(BackboneError, match="does not match"):
        create_backbone("resnet18", weights=str(path))


def test_pickled_weight_file_is_refused(tmp_path) -> None:
    import pickle

    path = tmp_path / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    path.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(BackboneError, match="safely"):
        create_backbone("resnet18", weights=str(path))
