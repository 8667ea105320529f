"""Feature extraction throughput: transferkit's fast path against the naive timm loop, same run.

The naive loop is what a user writes from the timm docs: the timm model in fp32, NCHW, timm's
eval transform, a default DataLoader (no workers), `torch.no_grad()` rather than inference mode.
Ours: `transferkit.features.extract_features` with its defaults (channels_last, bf16 autocast where
the CPU runs it natively after a parity check, a decoding worker, uint8 samples normalised per
batch). Both read the same JPEG files; both feature sets then train the same linear probe, so
the speed-up is shown at equal probe accuracy.

    python benchmarks/extract.py [--per-class 96] [--size 400x300] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _data import write_shapes


def naive_features(model: torch.nn.Module, paths: list[str], batch_size: int) -> np.ndarray:
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config({}, model=model))

    class Files(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return transform(Image.open(paths[i]).convert("RGB"))

    out = []
    model.eval()
    with torch.no_grad():
        for x in torch.utils.data.DataLoader(Files(), batch_size=batch_size):
            out.append(model(x))
    return torch.cat(out).numpy()


def probe_accuracy(X: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(Xtr)
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(Xtr), ytr)
    return float(clf.score(scaler.transform(Xte), yte))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=96)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", default="400x300", help="JPEG size WxH (phone photos are ~4000x3000)")
    parser.add_argument("--data", type=Path, default=None, help="where to write the JPEGs (default: a temp folder)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.data or Path(tempfile.gettempdir()) / f"transferkit-bench-shapes-{width}x{height}"

    from transferkit.backbones import create_backbone
    from transferkit.data import load_dataset
    from transferkit.features import ExtractOptions, extract_features

    data = load_dataset(write_shapes(root, args.per_class, size=(width, height)))
    paths, y = data.items, np.array(data.labels)
    backbone = create_backbone(args.backbone)
    naive_model = create_backbone(args.backbone).model  # its own copy: ours converts its model to channels_last
    print(f"{len(paths)} JPEG files ({width}x{height}, {len(set(data.labels))} classes), backbone {args.backbone}, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")

    # Warm both paths on a few files so one-off costs (allocations, kernel selection) are not timed.
    extract_features(backbone, paths[:8], options=ExtractOptions(progress=False, batch_size=8, num_workers=0))
    naive_features(naive_model, paths[:8], 8)

    start = time.perf_counter()
    naive = naive_features(naive_model, paths, args.batch_size)
    naive_s = time.perf_counter() - start

    start = time.perf_counter()
    ours = extract_features(backbone, paths, options=ExtractOptions(progress=False, batch_size=args.batch_size))
    ours_s = time.perf_counter() - start

    control = create_backbone(args.backbone, weights="random")
    control_acc = probe_accuracy(
        extract_features(control, paths, options=ExtractOptions(progress=False, batch_size=args.batch_size)).values, y
    )

    naive_rate, ours_rate = len(paths) / naive_s, len(paths) / ours_s
    naive_acc, ours_acc = probe_accuracy(naive, y), probe_accuracy(ours.values, y)
    print(f"naive timm loop  : {naive_rate:7.1f} img/s   probe accuracy {naive_acc:.2%}")
    print(f"transferkit      : {ours_rate:7.1f} img/s   probe accuracy {ours_acc:.2%}   ({ours.precision})")
    print(f"random-init control: probe accuracy {control_acc:.2%} (what the pretrained weights bring)")
    print(f"speed-up         : {ours_rate / naive_rate:.2f}x   accuracy difference "
          f"{100 * (ours_acc - naive_acc):+.2f} points")


if __name__ == "__main__":
    main()
