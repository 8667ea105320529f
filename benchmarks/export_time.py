"""Exporting a backbone to ONNX: the TorchScript exporter (tried first) against the dynamo one.

Every engine other than PyTorch runs an exported graph, so the export is what a first fit, a
server's start and `transferkit export` wait for. For each zoo backbone, both exporters write the
same `graph_parts()` in this process, alternating (`--repeats` rounds); printed: the median
seconds of each, their ratio, and the largest difference of each graph's features (onnxruntime)
from PyTorch's, at the example's batch size and at three times it.

    python benchmarks/export_time.py [--backbones efficientnet_lite0,all-minilm-l6-v2,ge2e] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _bigger(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The example three times over along its first axis."""
    return {n: t.repeat(3, *([1] * (t.dim() - 1))) for n, t in inputs.items()}


def _difference(path: Path, module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {i.name: inputs[i.name].numpy() for i in session.get_inputs()})[0]
    with torch.no_grad():
        want = module(*inputs.values()).numpy()
    return float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="efficientnet_lite0,all-minilm-l6-v2,ge2e")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from transferkit.backbones import create_backbone
    from transferkit.engines.onnx_graph import EXPORTERS, export_onnx

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print(f"{'backbone':20} " + " ".join(f"{e + ' s':>14}" for e in EXPORTERS) + f" {'ratio':>7}  max |Δ| (batch, 3x)")
    with tempfile.TemporaryDirectory() as folder:
        for name in [b.strip() for b in args.backbones.split(",") if b.strip()]:
            parts = create_backbone(name).graph_parts()
            inputs = parts.example_inputs()
            seconds: dict[str, list[float]] = {e: [] for e in EXPORTERS}
            diffs: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for exporter in EXPORTERS:
                    path = Path(folder) / f"{name}-{exporter}.onnx"
                    start = time.perf_counter()
                    export_onnx(parts.module, inputs, path, dynamic_axes=parts.dynamic_axes, exporters=(exporter,))
                    seconds[exporter].append(time.perf_counter() - start)
                    diffs[exporter] = (_difference(path, parts.module, inputs),
                                       _difference(path, parts.module, _bigger(inputs)))
            med = {e: statistics.median(v) for e, v in seconds.items()}
            print(f"{name:20} " + " ".join(f"{med[e]:14.1f}" for e in EXPORTERS)
                  + f" {med['dynamo'] / med['torchscript']:6.1f}x  "
                  + "; ".join(f"{e} {a:.1e}, {b:.1e}" for e, (a, b) in diffs.items()))


if __name__ == "__main__":
    main()
