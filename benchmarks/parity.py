"""Engine parity: every zoo backbone's features on each engine against PyTorch fp32, same inputs.

For each backbone, 8 generated inputs of varied sizes (images), lengths (texts) or durations
(clips) go through PyTorch fp32 (the backbone as it is, no inference rearrangement) and through
each engine forced; printed: the largest absolute difference and the least cosine similarity per
input. fp32 engines must agree to ~1e-5; bf16 runs only where the CPU has native bf16.

    python benchmarks/parity.py [--backbones efficientnet_lite0,all-minilm-l6-v2,...]
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

ZOO = ("efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,all-minilm-l6-v2,ge2e-speaker-encoder,"
       "efficientnet_lite0+logmel")


def inputs_for(modality: str, n: int = 8) -> list[object]:
    from PIL import Image

    rng = np.random.default_rng(0)
    if modality == "image":
        return [Image.fromarray(rng.integers(0, 256, (80 + 30 * i, 300 - 20 * i, 3), dtype=np.uint8)) for i in range(n)]
    if modality == "text":
        words = "the quick brown fox jumps over a lazy dog while seven wizards box nightly".split()
        return [" ".join(rng.choice(words, size=2 + 11 * i)) for i in range(n)]
    return [(0.1 * rng.standard_normal(int(16000 * (0.7 + 0.8 * i))).astype(np.float32), 16000) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default=ZOO)
    args = parser.parse_args()

    from transferkit.backbones import create_backbone
    from transferkit.engines.run import is_installed, openvino_has_bf16
    from transferkit.features import ExtractOptions, extract_features

    runs = [("onnxruntime", "fp32"), ("openvino", "fp32")]
    if is_installed("openvino") and openvino_has_bf16():
        runs.append(("openvino", "bf16"))
    print(f"{'backbone':28s} {'engine':18s} {'max |diff|':>11s} {'min cosine':>11s}   ran on")
    for name in args.backbones.split(","):
        backbone = create_backbone(name)
        items = inputs_for(backbone.modality)
        opts = {"progress": False, "num_workers": 0, "batch_size": 8}
        ref = extract_features(backbone, items, options=ExtractOptions(engine="torch", precision="fp32",
                                                                       optimize=False, **opts)).values
        for engine, precision in runs:
            if not is_installed(engine):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = extract_features(backbone, items, options=ExtractOptions(engine=engine, precision=precision,
                                                                               **opts))
            v = got.values
            cosine = (v * ref).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(ref, axis=1)
            print(f"{name:28s} {engine + ' ' + precision:18s} {np.abs(v - ref).max():11.2e} {cosine.min():11.7f}   "
                  f"{got.engine} {got.precision}")


if __name__ == "__main__":
    main()
