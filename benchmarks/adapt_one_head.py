"""Each alignment (none, standardize, coral, auto) applied to ONE fitted default probe's head, on the halves of
`benchmarks/adapt.py` (half A the target, half B scored), the transductive split and the no-shift control:
two probe fits per set instead of one per row. `python benchmarks/adapt_one_head.py icons`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import adapt as bench
from transferkit import TransferClassifier
from transferkit.adapt import fit_alignment
from transferkit.backbones.registry import DEFAULT_BACKBONES
from transferkit.cache import FeatureCache


def score(clf, x, truth, transform=None):
    x = np.asarray(x, np.float64)
    if transform is not None:
        x = transform(x)
    with torch.no_grad():
        p = torch.softmax(clf.head_(torch.from_numpy(x.astype(np.float32))).float(), 1).numpy()
    return float((clf.classes_[p.argmax(1)] == np.asarray(truth)).mean()), p


def feats(clf, items):
    f = clf.features(items)
    assert f.ok.all()
    return np.asarray(f.values, np.float64)


def variants(clf, source, ta, xb, yb, blocks, label):
    rows = {}
    rows["none"] = score(clf, xb, yb)[0]
    for m in ("standardize", "coral"):
        al = fit_alignment(source, ta, m, blocks=blocks)
        rows[m] = score(clf, xb, yb, al.apply)[0]
    al = fit_alignment(source, ta, "auto", blocks=blocks)
    lams = al.info
    rows["auto-js"] = score(clf, xb, yb, al.apply)[0]
    print(f"  {label}: " + "  ".join(f"{k} {100*v:.1f}" for k, v in rows.items()) + f"  lambdas {lams}", flush=True)
    return rows


def main(name: str) -> None:
    modality, splits = bench.load_set(name, Path("/work/data/unseen"), False)
    backbone = DEFAULT_BACKBONES[modality]
    views = 2 if modality in ("image", "audio") else 0
    cache = FeatureCache(Path(f"runs/adapt-{name}") / "cache" / name)
    a_idx, b_idx = bench.halves(len(splits["test"][0]))
    ha, hb = bench.take(splits["test"], a_idx), bench.take(splits["test"], b_idx)
    train, val = splits["train"], splits["val"]
    t0 = time.perf_counter()
    clf = TransferClassifier(backbone, augment=views, cache_dir=cache, progress=False, seed=0)
    clf.fit(*train, X_val=val[0], y_val=val[1])
    print(f"{name}: fit {time.perf_counter()-t0:.0f}s", flush=True)
    blocks = list(clf.backbone_.feature_blocks())
    source = np.concatenate([feats(clf, train[0]), feats(clf, val[0])])
    xa, xb = feats(clf, ha[0]), feats(clf, hb[0])
    variants(clf, source, xa, xb, hb[1], blocks, "halves (A target, B scored)")
    whole = np.concatenate([xa, xb])
    yw = list(ha[1]) + list(hb[1])
    variants(clf, source, whole, whole, yw, blocks, "transductive")
    # control
    va, vb = bench.halves(len(val[0]), bench.SEED + 1)
    ca, cb = bench.take(val, va), bench.take(val, vb)
    base = TransferClassifier(backbone, augment=views, cache_dir=cache, progress=False, seed=0).fit(*train)
    src = feats(base, train[0])
    variants(base, src, feats(base, ca[0]), feats(base, cb[0]), cb[1], blocks, "control")


if __name__ == "__main__":
    main(sys.argv[1])
