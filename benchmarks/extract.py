"""Feature extraction throughput: transferkit against the naive timm loop, same JPEGs, same run.

The naive loop is what a user writes from the timm docs: the timm model in fp32, NCHW, timm's
eval transform, a default DataLoader (no workers), `torch.no_grad()`. transferkit:
`extract_features` with its defaults (a decoding worker, uint8 samples normalised per batch,
JPEGs decoded at a reduced scale when the model shrinks them anyway) and `engine="auto"`: the
fastest installed engine whose features agree with PyTorch on the first batch. Every row is
measured at precision fp32 unless `--precision auto` (bf16 where the CPU has it): fp32 is what
a CPU without native bf16 runs. Then one row per forced engine, and with `--int8` OpenVINO int8
(NNCF post-training quantization calibrated on the training split's images). Every row is timed once
a round, in `--repeats` interleaved rounds, every other round in reverse order; the speed-up of engine auto
is the median of the rounds' own ratios to the naive loop run beside it.

The model-only ceiling: the engine auto chose, run on batches already decoded, resized and
collated in memory (the same number of images, no files, no loader, no copies out to the
result): what the end-to-end path could reach if everything but the model were free. The end-to-end
rate of engine auto is shown as a fraction of it.

Where the time goes: CPU seconds (user + system, of this process and its loader workers) per image,
median round, read beside the wall clock because a shared machine's wall clock says little. The
end to end CPU of engine auto is split into the model (the ceiling's run), decoding and resizing
(the sample loader alone, in this process), the engine check each extraction call makes (the
PyTorch fp32 reference on the first samples, the chosen engine compiled and checked, less the
first batch's own model time) and the rest (collation, transfers from the worker, threads waiting).

Each feature set trains the same linear probe (70/30 stratified split), so every speed is shown
at its probe accuracy. The first transferkit run on a machine exports the graph and races the
engines (remembered afterwards); it is reported on its own line, not in the timed rows.

    python benchmarks/extract.py [--per-class 96] [--size 400x300] [--precision fp32] [--int8]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (loader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def split(y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)  # type: ignore[no-any-return]


def probe_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int = 0) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X[train])
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(X[train]), y[train])
    return float(clf.score(scaler.transform(X[test]), y[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=96)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", default="400x300", help="JPEG size WxH (phone photos are ~4000x3000)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "auto"),
                        help="fp32 (default: what a CPU without bf16 runs) or auto (bf16 where native)")
    parser.add_argument("--int8", action="store_true",
                        help="also OpenVINO int8 (NNCF, calibrated on the training split)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved timed rounds (every other one in reverse order); medians are shown")
    parser.add_argument("--data", type=Path, default=None, help="where to write the JPEGs (default: a temp folder)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = args.data or Path(tempfile.gettempdir()) / f"transferkit-bench-shapes-{width}x{height}"

    from transferkit.backbones import create_backbone
    from transferkit.data import load_dataset
    from transferkit.engines.run import is_installed
    from transferkit.features import ExtractOptions, extract_features
    from transferkit.runtime import cpu_supports_bf16

    data = load_dataset(write_shapes(root, args.per_class, size=(width, height)))
    paths, y = [str(p) for p in data.items], np.array(data.labels)
    train, test = split(y)
    backbone = create_backbone(args.backbone)
    naive_model = create_backbone(args.backbone).model  # its own copy
    print(f"{len(paths)} JPEG files ({width}x{height}, {len(set(data.labels))} classes), backbone {args.backbone}, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, precision {args.precision}, "
          f"CPU native bf16: {'yes' if cpu_supports_bf16() else 'no'}, load average {os.getloadavg()[0]:.1f}")

    def ours(engine: str = "auto", precision: str = args.precision, **kw: Any) -> tuple[float, Any]:
        opts = ExtractOptions(progress=False, batch_size=args.batch_size, engine=engine, precision=precision, **kw)
        start = time.perf_counter()
        feats = extract_features(backbone, paths, options=opts)
        return time.perf_counter() - start, feats

    # Warm-up, untimed: one-off costs (allocations, kernel selection for the batch shape the timed runs use),
    # and transferkit's first run on this machine: it exports the graph (cached on disk) and races the engines
    # (remembered).
    naive_features(naive_model, paths[: args.batch_size], args.batch_size)
    first_s, first = ours()
    print(f"first transferkit run here (export + engine race): {len(paths) / first_s:.1f} img/s; "
          + "; ".join(first.notes))

    runs: dict[str, Any] = {"naive timm loop": lambda: naive_features(naive_model, paths, args.batch_size),
                            "transferkit (engine auto)": lambda: ours()[1]}
    for engine in ("torch", "onnxruntime", "openvino"):
        if is_installed(engine):
            runs[f"  engine {engine}"] = lambda engine=engine: ours(engine)[1]
    if args.int8:
        calibration = tuple(paths[i] for i in train[:300])
        ours("openvino", "int8", calibration=calibration)  # untimed: quantizes once (cached)
        runs["  int8 (openvino + NNCF)"] = lambda: ours("openvino", "int8", calibration=calibration)[1]
    from transferkit.engines.select import select_engine

    loader = backbone.sample_loader()
    batch = backbone.collate([loader(p) for p in paths[: args.batch_size]])
    chosen = select_engine(backbone, backbone.for_inference, [loader(p) for p in paths[: args.batch_size]],
                           engine=first.engine if first.engine != "cache" else "torch",
                           precision=first.precision, items_to_extract=len(paths)).engine  # as extraction runs it
    n_batches = -(-len(paths) // args.batch_size)

    def model_only() -> None:
        for _ in range(n_batches):
            chosen(batch)

    first_samples = [loader(p) for p in paths[: args.batch_size]]
    runs["model only (ceiling)"] = model_only
    # what every extraction call does before its first batch's features: the check of the engine
    # (as engine auto runs it here, with its choice remembered: the same call `extract_features` makes)
    runs["engine check"] = lambda: select_engine(backbone, backbone.for_inference, first_samples,
                                                 precision=args.precision, items_to_extract=len(paths))
    runs["decode and resize"] = lambda: [loader(p) for p in paths]
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    results: dict[str, Any] = {}
    # Interleaved rounds, every other one in reverse order (ABC… CBA…): the naive loop and engine auto run next
    # to each other in every round, first one then the other, so a drift of the machine's speed or load (other
    # processes on a shared machine) falls on both alike. The median round of each row is shown, and the
    # speed-up is the median of the rounds' own ratios (each from the two runs side by side).
    for round_ in range(args.repeats):
        for label, run in list(runs.items())[:: -1 if round_ % 2 else 1]:
            start, start_cpu = time.perf_counter(), cpu_seconds()
            results[label] = run()
            times.setdefault(label, []).append(time.perf_counter() - start)
            cpu.setdefault(label, []).append(cpu_seconds() - start_cpu)
    best = {label: float(np.median(t)) for label, t in times.items()}
    per_image = {label: 1000 * float(np.median(c)) / len(paths) for label, c in cpu.items()}  # core-ms
    ceiling = n_batches * args.batch_size / best.pop("model only (ceiling)")
    for label in ("model only (ceiling)", "engine check", "decode and resize"):
        runs.pop(label)
    check_ms = 1000 * float(np.median(cpu["engine check"])) - per_image["model only (ceiling)"] * args.batch_size
    naive_rate = len(paths) / best["naive timm loop"]
    naive_acc = probe_accuracy(results["naive timm loop"], y, train, test)
    rows: list[tuple[str, float, float, str]] = [("naive timm loop", naive_rate, naive_acc, "fp32, NCHW")]
    for label in list(runs)[1:]:
        feats = results[label]
        how = f"{feats.engine} {feats.precision}"
        if label.startswith("  int8"):
            how += f", cosine to fp32 {feats.parity:.4f}"
        elif label.startswith("  engine"):
            how += f", parity {feats.parity:.6f}"
        rows.append((label, len(paths) / best[label], probe_accuracy(feats.values, y, train, test), how))

    control = create_backbone(args.backbone, weights="random")
    control_feats = extract_features(control, paths, options=ExtractOptions(progress=False, precision=args.precision))
    print()
    print(f"load average {os.getloadavg()[0]:.1f} at the end (2 cores: above ~2, other processes shared them)")
    print(f"{'':28s} {'img/s':>8s} {'vs naive':>9s} {'CPU/img':>8s} {'probe acc':>10s}   engine")
    for label, rate, acc, how in rows:
        print(f"{label:28s} {rate:8.1f} {rate / naive_rate:8.2f}x {per_image[label]:6.1f}ms {acc:10.2%}   {how}")
    print(f"random-init control: probe accuracy {probe_accuracy(control_feats.values, y, train, test):.2%} "
          "(what the pretrained weights bring)")
    paired = [a / b for a, b in zip(times["naive timm loop"], times["transferkit (engine auto)"], strict=True)]
    print(f"speed-up, engine auto vs naive: {float(np.median(paired)):.2f}x (median of the {len(paired)} rounds' "
          f"ratios: {', '.join(f'{r:.2f}' for r in paired)}; ratio of the medians {rows[1][1] / naive_rate:.2f}x) at "
          f"{100 * (rows[1][2] - naive_acc):+.2f} points of probe accuracy")
    print(f"model-only ceiling ({chosen.label} on batches decoded and collated in memory): {ceiling:.1f} img/s; "
          f"end to end, engine auto reaches {rows[1][1]:.1f} img/s = {rows[1][1] / ceiling:.0%} of it")
    total, model = per_image["transferkit (engine auto)"], per_image["model only (ceiling)"]
    decode, check = per_image["decode and resize"], check_ms / len(paths)
    print(f"where engine auto's CPU goes, per image (user+sys of the process and its loader workers, "
          f"{torch.get_num_threads()} threads): {total:.1f} core-ms = model {model:.1f} ({model / total:.0%}) "
          f"+ decode and resize {decode:.1f} ({decode / total:.0%}) + the engine check of each call "
          f"{check:.1f} ({check / total:.0%}; {check_ms / 1000:.2f} core-s a call, over {len(paths)} images) "
          f"+ the rest {total - model - decode - check:.1f} ({(total - model - decode - check) / total:.0%}: "
          "collation, transfers, waiting threads)")


if __name__ == "__main__":
    main()
