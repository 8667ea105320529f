"""Does transferability ranking pick the backbone that transfers best, at a fraction of the cost?

    .venv/bin/python benchmarks/ranking.py [--n 400] [--n-rank 80] [--out /tmp/tk-ranking-bench]

For each of two datasets the project makes itself (sklearn's handwritten digits as PNGs, and
procedural shapes — disc, square, bar, triangle, cross, ring — in random colours on noise), and a
pool of six candidates (the zoo EfficientNet-Lite0/1/2, a random-init Lite0 control, and Lite0's
stage-3 and stage-4 pooled features as intermediate-layer candidates):

- **ground truth**: a linear probe (the head `TransferClassifier` trains: `heads.fit_head`, its C
  chosen on a validation split) on each candidate's features of a stratified train split,
  accuracy on the held-out test split;
- **ranking**: every estimator on a stratified subsample of the train split (`--n-rank`), through
  the same policy as `transferkit.rank`; per estimator its weighted Kendall τ with the ground
  truth (`scipy.stats.weightedtau`), top-1 hit, and the regret of its pick (best accuracy − the
  pick's accuracy, in points);
- **cost**: wall time of ranking (feature extraction of the subsample + scoring, cold cache)
  against brute force (extraction of all samples + probe training, for every candidate, cold),
  and against brute-force fine-tuning, estimated from a measured training throughput
  (candidates × 10 epochs × train samples ÷ img/s).

Targets (issue 4): ranking ≥ 20x cheaper than brute force; the chosen backbone within 1 point of
the best. Ratios are measured in the same run; absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from transferkit.backbones import create_backbone
from transferkit.data import load_dataset, split_indices
from transferkit.features import ExtractOptions, extract_features
from transferkit.heads import fit_head, parse_head
from transferkit.ranking.layers import LayerFeatures
from transferkit.ranking.policy import CandidateFeatures, score_candidates, stratified_subsample
from transferkit.ranking.rank_backbones import source_probabilities

METRICS = ("logme", "sfda", "hscore", "gbc", "leep", "nce", "knn")
#: extractor → candidates it yields (name → layer of LayerFeatures, or None for the final embedding)
POOL: list[tuple[str, str | None, dict[str, str | None]]] = [
    ("efficientnet_lite0", None, {"efficientnet_lite0": "final", "efficientnet_lite0:stage3": "stage3",
                                  "efficientnet_lite0:stage4": "stage4"}),
    ("efficientnet_lite1", None, {"efficientnet_lite1": None}),
    ("efficientnet_lite2", None, {"efficientnet_lite2": None}),
    ("efficientnet_lite0", "random", {"efficientnet_lite0@random": None}),
]
SHAPES = ("disc", "square", "bar", "triangle", "cross", "ring")


def write_shapes(root: Path, n_per_class: int, seed: int = 0) -> Path:
    """root/<shape>/<i>.png: one shape of random size, position and colour on a noisy background."""
    marker = root / f".complete-{n_per_class}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            bg = rng.integers(0, 256, 3)
            pixels = (bg[None, None, :] + rng.normal(0, 40, (64, 64, 3))).clip(0, 255).astype(np.uint8)
            img = Image.fromarray(pixels)
            draw = ImageDraw.Draw(img)
            fg = tuple(int(v) for v in (255 - bg + rng.integers(-60, 60, 3)).clip(0, 255))
            cx, cy, r = (int(v) for v in (rng.integers(20, 44), rng.integers(20, 44), rng.integers(9, 18)))
            box = (cx - r, cy - r, cx + r, cy + r)
            if shape == "disc":
                draw.ellipse(box, fill=fg)
            elif shape == "square":
                draw.rectangle(box, fill=fg)
            elif shape == "bar":
                draw.rectangle((cx - r, cy - 3, cx + r, cy + 3), fill=fg)
            elif shape == "triangle":
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
            elif shape == "cross":
                draw.rectangle((cx - r, cy - 3, cx + r, cy + 3), fill=fg)
                draw.rectangle((cx - 3, cy - r, cx + 3, cy + r), fill=fg)
            else:
                draw.ellipse(box, outline=fg, width=4)
            img.save(root / shape / f"{i:04d}.png")
    marker.write_text("ok\n")
    return root


def datasets(out: Path, n: int, seed: int) -> dict[str, tuple[list[str], np.ndarray]]:
    from transferkit.commands.demo import write_digits

    found = {}
    for name, root in (("digits", write_digits(out / "digits")),
                       ("shapes", write_shapes(out / "shapes", n // len(SHAPES) + 1, seed))):
        data = load_dataset(root)
        keep = stratified_subsample(data.labels, n, seed)
        found[name] = ([str(data.items[i]) for i in keep], np.array([data.labels[i] for i in keep]))
    return found


def extractor_for(backbone: str, weights: str | None, layers: bool) -> tuple[Any, Any]:
    model = create_backbone(backbone, weights=weights, **({"seed": 0} if weights == "random" else {}))
    return model, (LayerFeatures(model) if layers else model)


def candidate_features(items: list[str], options: ExtractOptions) -> tuple[dict[str, tuple[np.ndarray, Any]], float]:
    """name → (features, source probabilities) of every candidate, and the wall time it took (cold)."""
    out: dict[str, tuple[np.ndarray, Any]] = {}
    start = time.perf_counter()
    for backbone, weights, names in POOL:
        needs_layers = any(layer not in (None, "final") for layer in names.values())
        model, extractor = extractor_for(backbone, weights, needs_layers)
        feats = extract_features(extractor, items, options=options, cache=None)
        assert feats.ok.all(), feats.failed
        parts = extractor.split(feats.values) if needs_layers else {None: feats.values}
        for name, layer in names.items():
            values = parts[layer] if needs_layers else parts[None]
            final = layer in (None, "final")
            out[name] = (values, source_probabilities(model, values) if final else None)
    return out, time.perf_counter() - start


def probe_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    """Test accuracy of the linear probe TransferClassifier trains (C chosen on a val split of train)."""
    classes = sorted(set(y.tolist()))
    codes = np.array([classes.index(v) for v in y])
    parts = split_indices(list(y[train]), val_fraction=0.2, test_fraction=0.0, seed=seed)
    tr, va = train[parts["train"]], train[parts["val"]]
    head, _ = fit_head(parse_head("linear"), X[tr], codes[tr], X[va], codes[va], len(classes), weights=None,
                       seed=seed)
    import torch

    with torch.no_grad():
        pred = head(torch.from_numpy(X[test].astype(np.float32))).argmax(1).numpy()
    return float((pred == codes[test]).mean())


def training_throughput(seconds: float = 12.0) -> float:
    """Measured images/s of one fine-tuning step (forward + backward + AdamW) of Lite0, bf16, channels-last."""
    import torch

    from transferkit.runtime import autocast, resolve_device, resolve_precision

    device = resolve_device(None)
    precision = resolve_precision("auto", device)
    model = create_backbone("efficientnet_lite0").train()
    model.to(memory_format=torch.channels_last)
    head = torch.nn.Linear(model.num_features, 10)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-4)
    x = torch.randn(16, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done < 32:
        with autocast(precision, device):
            loss = torch.nn.functional.cross_entropy(head(model.forward_features(x)).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += len(x)
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="samples per dataset (stratified)")
    parser.add_argument("--n-rank", type=int, default=80, help="ranking subsample of the train split")
    parser.add_argument("--test", type=float, default=0.4, help="held-out test fraction")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/tk-ranking-bench"))
    args = parser.parse_args()
    from scipy.stats import weightedtau
    from threadpoolctl import threadpool_limits

    options = ExtractOptions(progress=False, batch_size=32, num_workers=1)
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, dict[str, list[float]]] = {m: {"tau": [], "hit": [], "regret": []} for m in METRICS}
    ratios, ft_ratios = [], []
    ips = training_throughput()
    print(f"fine-tuning throughput (Lite0, fwd+bwd, this machine now): {ips:.1f} img/s")
    for name, (items, labels) in datasets(args.out, args.n, args.seed).items():
        split = split_indices(list(labels), val_fraction=0.0, test_fraction=args.test, seed=args.seed)
        train, test = np.array(split["train"]), np.array(split["test"])
        rank_rows = train[stratified_subsample(list(labels[train]), args.n_rank, args.seed)]

        # ranking: cold extraction of the subsample, then every estimator through the policy
        t0 = time.perf_counter()
        feats, _ = candidate_features([items[i] for i in rank_rows], options)
        cands = [CandidateFeatures(n, X, P) for n, (X, P) in feats.items()]
        table = score_candidates(cands, labels[rank_rows], metrics=METRICS, select="logme")
        rank_s = time.perf_counter() - t0

        # brute force: cold extraction of every sample, a probe per candidate, test accuracy
        t0 = time.perf_counter()
        full, _ = candidate_features(items, options)
        with threadpool_limits(limits=1):
            acc = {n: probe_accuracy(X, labels, train, test, args.seed) for n, (X, _) in full.items()}
        brute_s = time.perf_counter() - t0
        finetune_s = len(acc) * 10 * len(train) / ips

        best = max(acc.values())
        print(f"\n== {name}: {len(items)} samples, {len(set(labels.tolist()))} classes; train {len(train)}, "
              f"test {len(test)}; ranking on {len(rank_rows)} ==")
        print(f"{'candidate':30s} {'probe acc':>9s} " + " ".join(f"{m:>8s}" for m in METRICS))
        for row in table.rows:
            scores = " ".join("     n/a" if row.scores.get(m) is None else f"{row.scores[m]:8.3f}" for m in METRICS)
            print(f"{row.name:30s} {acc[row.name]:9.3f} {scores}")
        print(f"{'estimator':10s} {'w. tau':>7s} {'top-1':>6s} {'regret':>7s}  pick")
        for m in METRICS:
            rows = [r for r in table.rows if r.scores.get(m) is not None]
            s = np.array([r.scores[m] for r in rows], dtype=float)
            a = np.array([acc[r.name] for r in rows])
            tau = float(weightedtau(s, a).statistic) if len(rows) > 2 and np.ptp(s) > 0 else float("nan")
            pick = rows[int(np.argmax(s))].name
            hit = float(acc[pick] == max(a))
            regret = 100 * (max(a) - acc[pick])
            summary[m]["tau"].append(tau)
            summary[m]["hit"].append(hit)
            summary[m]["regret"].append(regret)
            flag = " (unreliable here)" if m in table.unreliable else ""
            print(f"{m:10s} {tau:7.3f} {int(hit):6d} {regret:6.1f}pt  {pick}{flag} (over {len(rows)} candidates)")
        chosen = table.pick or ""
        print(f"policy pick: {chosen} by {table.picked_by}: probe acc {acc[chosen]:.3f}, best {best:.3f} "
              f"({max(acc, key=acc.__getitem__)}), regret {100 * (best - acc[chosen]):.1f} pt")
        ratios.append(brute_s / rank_s)
        ft_ratios.append(finetune_s / rank_s)
        print(f"time: ranking {rank_s:.1f}s; brute-force probe {brute_s:.1f}s ({brute_s / rank_s:.1f}x); "
              f"brute-force fine-tuning (estimated, 10 epochs) {finetune_s:.0f}s ({finetune_s / rank_s:.0f}x)")

    print("\n== over the datasets ==")
    for m in METRICS:
        tau = np.nanmean(summary[m]["tau"]) if not np.all(np.isnan(summary[m]["tau"])) else float("nan")
        print(f"{m:10s} mean w. tau {tau:6.3f}  top-1 hits {int(sum(summary[m]['hit']))}/{len(summary[m]['hit'])}  "
              f"mean regret {np.mean(summary[m]['regret']):.1f} pt")
    print(f"ranking is {min(ratios):.1f}-{max(ratios):.1f}x cheaper than brute-force probing, "
          f"{min(ft_ratios):.0f}-{max(ft_ratios):.0f}x cheaper than brute-force fine-tuning (estimated)")


if __name__ == "__main__":
    main()
