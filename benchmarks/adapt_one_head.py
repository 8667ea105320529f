"""Each alignment applied to ONE fitted default probe's head, on the halves of `benchmarks/adapt.py` (half A
the target, half B scored), the transductive split and the no-shift control: two probe fits per set instead
of one per row. `python benchmarks/adapt_one_head.py icons [--self-training]`.

Rows: none; standardize; coral (Ledoit–Wolf-shrunk); js (James–Stein-shrunk standardisation, applied
whatever the shift test says); auto (the shift test first, then js only when it detects a shift: what `fit`
does); with --self-training also js+st and coral+st — class-balanced self-training (`adapt.selftrain`) on
top of the alignment: the head retrained by `train_probe` on the un-augmented training features plus the
confident aligned target (C chosen on the validation split), so it differs from the default head by its
views too (halves and control only)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import adapt as bench
from transferkit import TransferClassifier
from transferkit.adapt import auto_outcome, fit_alignment, self_train
from transferkit.backbones.registry import DEFAULT_BACKBONES
from transferkit.cache import FeatureCache
from transferkit.heads import parse_head, train_probe


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


def variants(clf, source, ta, xb, yb, blocks, label, selftrain=None):
    rows = {}
    rows["none"] = score(clf, xb, yb)[0]
    for m in ("standardize", "coral"):
        al = fit_alignment(source, ta, m, blocks=blocks)
        rows[m] = score(clf, xb, yb, al.apply)[0]
    al = fit_alignment(source, ta, "auto", blocks=blocks)
    moved, why = auto_outcome(al)
    rows["js"] = score(clf, xb, yb, al.apply)[0]
    rows["auto"] = rows["js"] if moved else rows["none"]
    if selftrain is not None:
        for name, alignment in (("js+st", al), ("coral+st", fit_alignment(source, ta, "coral", blocks=blocks))):
            predict, _report = self_train(selftrain, selftrain.xs, selftrain.ys, alignment.apply(ta))
            proba = predict(alignment.apply(xb))
            rows[name] = float((clf.classes_[proba.argmax(1)] == np.asarray(yb)).mean())
    first = (al.parts[0] if hasattr(al, "parts") else al).info
    print(f"  {label}: " + "  ".join(f"{k} {100*v:.1f}" for k, v in rows.items())
          + f"\n    shift test p={first['shift_p_value']:.3g} (threshold {first['shift_threshold']:.3g}) "
          f"detected={bool(first['shift_detected'])}; {why[:80]}", flush=True)
    return rows


def head_trainer(clf, train, val, blocks):
    """fit(X, y) -> predict_proba, the default head's kind trained by `train_probe` (C chosen on `val`; without
    one, on a seeded 15% of `train`)."""
    index = {c: i for i, c in enumerate(clf.classes_)}
    x, y = feats(clf, train[0]), np.array([index[v] for v in train[1]])
    if val is None:
        order = np.random.default_rng(bench.SEED).permutation(len(y))
        hold, keep = order[: len(y) * 15 // 100], order[len(y) * 15 // 100:]
        xv, yv, x, y = x[hold], y[hold], x[keep], y[keep]
    else:
        xv, yv = feats(clf, val[0]), np.array([index[v] for v in val[1]])
    spec = parse_head(clf.head)

    def fit(xs, ys):
        return train_probe(spec, xs, ys, xv, yv, len(clf.classes_), class_weight=clf.class_weight, seed=0,
                           blocks=blocks).proba

    fit.xs, fit.ys = x, y
    return fit


def main(name: str, with_selftrain: bool) -> None:
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
    st = head_trainer(clf, train, val, blocks) if with_selftrain else None
    variants(clf, source, xa, xb, hb[1], blocks, "halves (A target, B scored)", st)
    whole = np.concatenate([xa, xb])
    yw = list(ha[1]) + list(hb[1])
    variants(clf, source, whole, whole, yw, blocks, "transductive")
    # control
    va, vb = bench.halves(len(val[0]), bench.SEED + 1)
    ca, cb = bench.take(val, va), bench.take(val, vb)
    base = TransferClassifier(backbone, augment=views, cache_dir=cache, progress=False, seed=0).fit(*train)
    src = feats(base, train[0])
    st = head_trainer(base, train, None, blocks) if with_selftrain else None
    variants(base, src, feats(base, ca[0]), feats(base, cb[0]), cb[1], blocks, "control", st)


if __name__ == "__main__":
    main(sys.argv[1], "--self-training" in sys.argv[2:])
