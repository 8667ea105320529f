"""Peak memory of extraction at 2,000 and 20,000 generated images: it must not grow with the inputs.

Each size runs in its own subprocess (so one run's memory cannot hide in another's), on JPEG files
written here, with the feature cache on (emptied between runs), at the defaults (`engine="auto"`)
and precision fp32. A first run on 200 images exports the graph and races the engines, as the
first extraction on a machine does; its peak is shown on its own line (the export holds the
traced graph in memory once), and the measured runs reuse the exported graph.
Reported per size: the process's peak RSS (`ru_maxrss`), its RSS before extraction (torch, the
backbone and the engine libraries loaded), the peak of its loader worker processes, and the size
of the result itself (N × D float32, which the caller asked for and which must grow). Extraction
streams when the peak minus the result stays flat from 2,000 to 20,000 inputs.

    python benchmarks/memory.py [--sizes 2000,20000] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_images(folder: Path, n: int) -> list[str]:
    """`n` JPEG files (16 distinct generated pictures, each written under many names)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(16):
        path = folder / "template.jpg"
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path, quality=85)
        blobs.append(path.read_bytes())
    path.unlink()
    paths = []
    for i in range(n):
        p = folder / f"{i:06d}.jpg"
        if not p.exists():
            p.write_bytes(blobs[i % len(blobs)])
        paths.append(str(p))
    return paths


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(n: int, folder: Path, cache: Path, backbone_name: str) -> None:
    from transferkit.backbones import create_backbone
    from transferkit.cache import FeatureCache
    from transferkit.features import ExtractOptions, extract_features

    paths = sorted(str(p) for p in folder.glob("*.jpg"))[:n]
    backbone = create_backbone(backbone_name)
    import onnxruntime  # noqa: F401  - loaded before the baseline so it is not counted as growth

    before = rss_mb()
    start = time.perf_counter()
    feats = extract_features(backbone, paths, options=ExtractOptions(progress=False, precision="fp32"),
                             cache=FeatureCache(cache))
    seconds = time.perf_counter() - start
    print(json.dumps({
        "n": n,
        "before_mb": before,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "result_mb": feats.values.nbytes / 2**20,
        "seconds": seconds,
        "engine": f"{feats.engine} {feats.precision}",
        "extracted": feats.extracted,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "transferkit-bench-memory")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.data, args.cache, args.backbone)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    write_images(args.data, max(sizes))
    print(f"backbone {args.backbone}, precision fp32, engine auto; JPEGs in {args.data}")
    print(f"{'inputs':>7s} {'before':>8s} {'peak':>8s} {'growth':>8s} {'result':>8s} {'growth-result':>14s} "
          f"{'workers':>8s} {'img/s':>7s}  engine")
    rows = []
    with tempfile.TemporaryDirectory(prefix="transferkit-memory-cache-") as cache:
        for n in [200, *sizes]:
            shutil.rmtree(Path(cache) / "features", ignore_errors=True)  # extract everything again
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), "--data", str(args.data), "--cache", cache,
                 "--backbone", args.backbone],
                check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            growth = row["peak_mb"] - row["before_mb"]
            label = "first" if not rows else f"{n:7d}"
            print(f"{label:>7s} {row['before_mb']:7.0f}M {row['peak_mb']:7.0f}M {growth:7.0f}M "
                  f"{row['result_mb']:7.1f}M {growth - row['result_mb']:13.0f}M {row['workers_peak_mb']:7.0f}M "
                  f"{n / row['seconds']:7.1f}  "
                  f"{row['engine']}" + ("   (200 inputs, exports the graph)" if not rows else ""))
            rows.append(row)
    rows = rows[1:]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"peak RSS {b['n']} vs {a['n']} inputs: {b['peak_mb'] - a['peak_mb']:+.0f} MB, of which the larger "
              f"result is {b['result_mb'] - a['result_mb']:+.0f} MB")


if __name__ == "__main__":
    main()
