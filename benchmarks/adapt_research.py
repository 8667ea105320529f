"""Source-free / feature-level adaptation methods on ONE fitted default probe, on cached features.

Two steps, so that every method is tried on the same features and heads:

    python benchmarks/adapt_research.py dump icons --cache /work/runs/adapt6/cache --out /work/runs/adapt6/feats
    python benchmarks/adapt_research.py run icons,debtext,speech --feats /work/runs/adapt6/feats

`dump` fits the default probe of `benchmarks/adapt.py` (train, validation given) and the control's probe
(train alone) on the set's feature cache, and saves the un-augmented features of every split and both heads'
parameters (standardisation, weight, bias) to one .npz. `run` applies each method to those heads, on the
three protocols of `benchmarks/adapt.py`: halves (test half A the unlabelled target, half B scored),
transductive (the whole test split both), control (no shift: the validation split in halves, the probe
fitted on train alone). Methods — each a rule from its paper, no constant chosen on a set here:

- `none`: the head as fitted; `js`: James–Stein-shrunk standardisation (`adapt.fit_alignment(..., 'auto')`
  applied whatever the shift test says); `js-w`: the same with the source's moments re-weighted to the
  target's class proportions (EM, `adapt.priors`); `latent`: the target's latent domains each aligned by `js`
  (`adapt.latent`), whatever the test says; `auto`: the shift test first, then `js-w` or `latent` by the
  head's information on the target, `latent` when its gain's bootstrap lower bound is above zero (what
  `fit --adapt-to` does);
- `shot-pl` (Liang, Hu & Feng, ICML 2020, its pseudo-labelling step): in the head's input space (standardised,
  then L2-normalised), target class centroids weighted by the head's softmax, each target input relabelled by
  its nearest centroid (cosine), centroids recomputed from those labels and relabelled once more; the
  centroids are the classifier (nearest centroid), applied to the scored inputs;
- `kmeans` (the clustering step of SRDC, Tang, Chen & Jia CVPR 2020, and CAN, Kang et al. CVPR 2019):
  spherical k-means on the target started at the SOURCE class means (same space), to convergence (≤ 20
  rounds); its centroids are the classifier;
- `*+lr`: the head retrained (`train_probe`, C on the validation split) on source + the target labelled by
  that method, applied to the scored inputs — a head, i.e. something a bundle can carry;
- each also after `js` (the head's input aligned first): `js+shot-pl`, ...
- `em`: label shift — the target's class priors re-estimated by EM on the head's posteriors (Saerens, Latinne &
  Decaestecker, Neural Computation 2002) and the posteriors re-weighted by prior_t / prior_s; `bbse`: the
  same re-weighting with the ratio from black-box shift estimation (Lipton, Wang & Smola, ICML 2018);
- `bnm`: the `mcc` row's head training with Batch Nuclear-norm Maximization (Cui et al., CVPR 2020) as the
  target loss in place of class confusion (same parameters, optimiser, schedule, trade-off 1);

Reported: accuracy (%) per protocol. The machine is shared; times are not reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import adapt as bench


def dump(name: str, cache_root: Path, out: Path) -> None:
    from transferkit import TransferClassifier
    from transferkit.backbones.registry import DEFAULT_BACKBONES
    from transferkit.cache import FeatureCache

    modality, splits = bench.load_set(name, Path("/work/data/unseen"), False)
    backbone = DEFAULT_BACKBONES[modality]
    views = 2 if modality in ("image", "audio") else 0
    cache = FeatureCache(cache_root / name)

    def probe() -> Any:
        return TransferClassifier(backbone, augment=views, cache_dir=cache, progress=False, seed=bench.SEED)

    train, val, test = splits["train"], splits["val"], splits["test"]
    clf = probe().fit(*train, X_val=val[0], y_val=val[1])
    base = probe().fit(*train)
    assert list(clf.classes_) == list(base.classes_)

    def feats(split: tuple[list[str], list[str]]) -> np.ndarray:
        f = clf.features(split[0])
        assert f.ok.all(), name
        return np.asarray(f.values, np.float32)

    def head(c: Any) -> dict[str, np.ndarray]:
        std, lin = c.head_[0], c.head_[1]
        return {"mean": std.mean.numpy(), "std": std.std.numpy(), "w": lin.weight.detach().numpy(),
                "b": lin.bias.detach().numpy()}

    index = {c: i for i, c in enumerate(clf.classes_)}
    arrays: dict[str, np.ndarray] = {}
    for split, data in (("train", train), ("val", val), ("test", test)):
        arrays[f"x_{split}"] = feats(data)
        arrays[f"y_{split}"] = np.array([index[v] for v in data[1]])
    for tag, c in (("default", clf), ("control", base)):
        for k, v in head(c).items():
            arrays[f"{tag}_{k}"] = v
    arrays["blocks"] = np.array(list(clf.backbone_.feature_blocks() or [arrays["x_train"].shape[1]]))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{name}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(out / f"{name}.npz")
    print(f"{name}: dumped {', '.join(f'{k} {v.shape}' for k, v in arrays.items())}", flush=True)


# -- methods on fixed features --------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class Head:
    def __init__(self, d: Any, tag: str) -> None:
        self.mean, self.std = d[f"{tag}_mean"].astype(np.float64), d[f"{tag}_std"].astype(np.float64)
        self.w, self.b = d[f"{tag}_w"].astype(np.float64), d[f"{tag}_b"].astype(np.float64)

    def inner(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.inner(x) @ self.w.T + self.b)


def unit(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def shot_centroids(f: np.ndarray, p: np.ndarray) -> np.ndarray:
    """SHOT's pseudo-labelling: soft centroids, nearest-centroid labels, hard centroids once more."""
    f = unit(f)
    c = unit(p.T @ f)
    labels = (f @ c.T).argmax(1)
    k = p.shape[1]
    onehot = np.eye(k)[labels]
    hard = onehot.T @ f
    present = onehot.sum(0) > 0
    c = np.where(present[:, None], unit(hard), c)
    return c


def kmeans_centroids(f: np.ndarray, init: np.ndarray, rounds: int = 20) -> np.ndarray:
    f, c = unit(f), unit(init)
    labels = None
    for _ in range(rounds):
        new = (f @ c.T).argmax(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        onehot = np.eye(len(c))[labels]
        present = onehot.sum(0) > 0
        c = np.where(present[:, None], unit(onehot.T @ f), c)
    return c


def propagate(f: np.ndarray, p: np.ndarray, k: int = 10, alpha: float = 0.99) -> np.ndarray:
    """Label propagation (Zhou et al., NIPS 2004) on the target's own cosine k-NN graph, seeded by the head's
    softmax: F = (I - alpha S)^-1 P, S = D^-1/2 W D^-1/2, W the symmetrised k-NN affinities (cosine^3, as
    Iscen et al., CVPR 2019). Returns the propagated class of each target row."""
    f = unit(f)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(f) - 1)
    idx = np.argpartition(-sim, k, axis=1)[:, :k]
    w = np.zeros_like(sim)
    rows = np.repeat(np.arange(len(f)), k)
    w[rows, idx.ravel()] = np.clip(sim[rows, idx.ravel()], 0, None) ** 3
    w = w + w.T
    dinv = 1 / np.sqrt(np.maximum(w.sum(1), 1e-12))
    s = w * dinv[:, None] * dinv[None, :]
    out = np.linalg.solve(np.eye(len(f)) - alpha * s, p)
    return out.argmax(1)


def shot_im(head: Head, target: np.ndarray, scored: np.ndarray, beta: float, seed: int = 0) -> np.ndarray:
    """SHOT (Liang, Hu & Feng, ICML 2020) on fixed features: the classifier frozen, the part before it adapted —
    here a per-feature affine map (gamma, beta) on the head's standardised input, as Tent (Wang et al., ICLR 2021)
    adapts normalisation's affine parameters — by information maximisation on the target (mean entropy of
    the predictions minus the entropy of their mean) plus `beta` x cross-entropy to SHOT's centroid
    pseudo-labels (recomputed each epoch; beta = 0: SHOT-IM). SHOT's schedule: SGD lr 0.01, momentum 0.9,
    weight decay 1e-3, batches of 64, 15 epochs. Returns the predicted classes of `scored`."""
    import torch

    torch.manual_seed(seed)
    zt = torch.from_numpy(head.inner(target)).float()
    zs = torch.from_numpy(head.inner(scored)).float()
    w, b = torch.from_numpy(head.w).float(), torch.from_numpy(head.b).float()
    gamma = torch.ones(zt.shape[1], requires_grad=True)
    shift = torch.zeros(zt.shape[1], requires_grad=True)
    opt = torch.optim.SGD([gamma, shift], lr=0.01, momentum=0.9, weight_decay=1e-3)
    logits = lambda z: (z * gamma + shift) @ w.T + b  # noqa: E731
    gen = torch.Generator().manual_seed(seed)
    for _ in range(15):
        if beta:
            with torch.no_grad():
                zz = (zt * gamma + shift).numpy().astype(np.float64)
                pp = torch.softmax(logits(zt), 1).numpy().astype(np.float64)
            pseudo = torch.from_numpy(nearest(shot_centroids(zz, pp), zz))
        for batch in torch.randperm(len(zt), generator=gen).split(64):
            out = logits(zt[batch])
            prob = torch.softmax(out, 1)
            ent = -(prob * torch.log(prob + 1e-5)).sum(1).mean()
            mean = prob.mean(0)
            div = -(mean * torch.log(mean + 1e-5)).sum()
            loss = ent - div
            if beta:
                loss = loss + beta * torch.nn.functional.cross_entropy(out, pseudo[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return logits(zs).argmax(1).numpy()


def mcc(head: Head, source: np.ndarray, src_y: np.ndarray, target: np.ndarray, scored: np.ndarray,
        seed: int = 0, tradeoff: float = 1.0) -> np.ndarray:
    """`--adapt-method mcc`'s head training (`transferkit.adapt.mcc.mcc_head`: Minimum Class Confusion, Jin,
    Wang, Long & Wang, ECCV 2020, on the head's linear layer and a per-feature affine map on its standardised
    input) from this head; `tradeoff=0.0`: the same schedule, source cross-entropy alone. Returns the
    predicted classes of `scored`."""
    import torch

    from transferkit.adapt import mcc as adapt_mcc
    from transferkit.heads.head_spec import Standardize

    standardize, linear = Standardize(len(head.mean)), torch.nn.Linear(head.w.shape[1], head.w.shape[0])
    with torch.no_grad():
        standardize.mean.copy_(torch.from_numpy(head.mean))
        standardize.std.copy_(torch.from_numpy(head.std))
        linear.weight.copy_(torch.from_numpy(head.w))
        linear.bias.copy_(torch.from_numpy(head.b))
    kept, adapt_mcc.TRADEOFF = adapt_mcc.TRADEOFF, tradeoff
    try:
        tuned = adapt_mcc.mcc_head(torch.nn.Sequential(standardize, linear), source, src_y, target, seed=seed)
    finally:
        adapt_mcc.TRADEOFF = kept
    with torch.no_grad():
        return tuned(torch.from_numpy(np.asarray(scored, np.float32))).argmax(1).numpy()


def bnm_loss(logits: Any, temperature: float = 1.0) -> Any:
    """Batch Nuclear-norm Maximization (Cui, Wang, Zhuo, Li, Huang & Tian, CVPR 2020): minus the nuclear norm of
    the batch's softmax matrix [B, C] over B — larger when predictions are both confident (discriminable) and
    spread over classes (diverse). `temperature` is accepted for MCC's signature and ignored (BNM has none)."""
    import torch

    return -torch.linalg.matrix_norm(torch.softmax(logits.float(), dim=1), ord="nuc") / logits.shape[0]


def bnm(head: Head, source: np.ndarray, src_y: np.ndarray, target: np.ndarray, scored: np.ndarray,
        seed: int = 0) -> np.ndarray:
    """`mcc` above with BNM's loss in place of class confusion: the same head, parameters, optimiser and
    schedule (trade-off 1), so the two losses are compared on equal terms."""
    from transferkit.adapt import mcc as adapt_mcc

    kept, adapt_mcc.minimum_class_confusion = adapt_mcc.minimum_class_confusion, bnm_loss  # type: ignore[assignment]
    try:
        return mcc(head, source, src_y, target, scored, seed=seed)
    finally:
        adapt_mcc.minimum_class_confusion = kept  # type: ignore[assignment]


def bbse_weights(pred_held: np.ndarray, y_held: np.ndarray, pred_target: np.ndarray, k: int) -> np.ndarray:
    """Black-box shift estimation (Lipton, Wang & Smola, ICML 2018): w = C^-1 mu, C[i, j] = P_s(yhat = i, y = j)
    on held-out labelled source, mu[i] = P_t(yhat = i) on the target; w_j = q(y = j) / p(y = j), clipped at 0
    (least squares where C is singular)."""
    c = np.zeros((k, k))
    np.add.at(c, (pred_held, y_held), 1.0)
    c /= len(y_held)
    mu = np.bincount(pred_target, minlength=k) / len(pred_target)
    w = np.linalg.lstsq(c, mu, rcond=None)[0]
    return np.clip(w, 0.0, None)


def reweighted(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Posteriors under a label shift of ratio `w` = prior_t / prior_s: p(y|x) w_y, renormalised (for a
    linear head: log w added to its bias)."""
    q = p * w
    return q / np.maximum(q.sum(1, keepdims=True), 1e-300)


def label_shift(head: Head, source: np.ndarray, held: tuple[np.ndarray, np.ndarray], p: np.ndarray,
                want: Any) -> dict[str, np.ndarray]:
    """The prior ratios prior_t / prior_s of the label-shift rows wanted (`em`, `bbse`), from the target's
    posteriors `p`; `held`: the labelled source BBSE's confusion matrix is read on."""
    from transferkit.adapt.priors import em_priors

    out = {}
    prior_s = head.proba(source).mean(0)
    if want("em"):
        out["em"] = em_priors(p, prior_s) / prior_s
    if want("bbse"):
        out["bbse"] = bbse_weights(head.proba(held[0]).argmax(1), held[1], p.argmax(1), p.shape[1])
    return out


def nearest(c: np.ndarray, f: np.ndarray) -> np.ndarray:
    return (unit(f) @ c.T).argmax(1)


def retrain(d: Any, blocks: list[int], xs: np.ndarray, ys: np.ndarray, xv: np.ndarray | None,
            yv: np.ndarray | None, k: int) -> Any:
    """The default head's kind, trained by `train_probe` on (xs, ys), C chosen on (xv, yv)
    (none given: a seeded 15% of the source rows, as `adapt_one_head.head_trainer`)."""
    from transferkit.heads import parse_head, train_probe

    if xv is None:
        return train_probe(parse_head("linear"), xs, ys, np.zeros((0, xs.shape[1]), np.float32),
                           np.zeros(0, np.int64), k, class_weight="auto", seed=0, blocks=blocks)
    return train_probe(parse_head("linear"), xs, ys, xv, yv, k, class_weight="auto", seed=0, blocks=blocks)


#: the method rows to compute (None: all); `--methods`
SELECT: set[str] | None = None
#: the seed of the trained methods' batches (`--seed`)
SEED = 0


def methods(d: Any, tag: str, source: np.ndarray, src_y: np.ndarray, fit_x: np.ndarray, fit_y: np.ndarray,
            val: tuple[np.ndarray, np.ndarray] | None, target: np.ndarray, scored: np.ndarray,
            truth: np.ndarray, blocks: list[int], with_lr: bool) -> dict[str, float]:
    """Accuracy of each method: `source`/`src_y` the labelled source the head saw, (fit_x, fit_y) what a
    retrained head trains on (validation `val` chooses its C), `target` the unlabelled target, `scored`
    the inputs scored against `truth`.

    Label shift (`em`, `bbse`, each also after `js`): the source prior is the head's mean posterior on the
    labelled source it was fitted with (the head's own prior: `class_weight` may have balanced it); BBSE's
    confusion matrix is read on held-out labelled source — the validation split (halves, transductive),
    or, in the control, where the validation split is the target, on the training split itself (in-sample:
    closer to 'classify and count')."""
    import torch

    from transferkit.adapt import auto_outcome, fit_alignment
    from transferkit.adapt.align import shrunk_map
    from transferkit.adapt.latent import fit_latent_alignment, information_gain
    from transferkit.adapt.priors import class_prior_weights, em_priors

    head = Head(d, tag)
    k = head.w.shape[0]
    acc = lambda pred: round(100 * float(np.mean(pred == truth)), 1)  # noqa: E731
    rows: dict[str, float] = {"none": acc(head.proba(scored).argmax(1))}
    al = fit_alignment(source, target, "auto", blocks=blocks)
    moved, _why = auto_outcome(al)
    transductive = target is scored
    aligned_t = al.apply(target).astype(np.float64)
    spaces = {"": (target, scored), "js+": (aligned_t, aligned_t if transductive else
                                            al.apply(scored).astype(np.float64))}
    rows["js"] = acc(head.proba(spaces["js+"][1]).argmax(1))
    # auto, a shift detected: the whole target's map (the source's moments re-weighted to the target's class
    # proportions by EM) or its latent domains' maps, by the head's information on the target
    weights = class_prior_weights(src_y, em_priors(head.proba(target), head.proba(source).mean(0)))
    weighted = shrunk_map(source, target, blocks, weights)
    rows["js-w"] = acc(head.proba(weighted.apply(scored).astype(np.float64)).argmax(1))
    latent = fit_latent_alignment(source, target, blocks, seed=0)
    informative = False
    if latent is not None:
        rows["latent"] = acc(head.proba(latent.apply(scored).astype(np.float64)).argmax(1))
        # like for like: the unweighted map; kept when the gain's bootstrap lower bound is above zero
        informative = information_gain(head.proba(latent.apply(target).astype(np.float64)),
                                       head.proba(aligned_t))[1] > 0
    rows["auto"] = (rows["latent"] if informative else rows["js-w"]) if moved else rows["none"]
    src_inner = head.inner(source)
    src_means = np.stack([unit(src_inner[src_y == c]).mean(0) if np.any(src_y == c) else np.zeros(src_inner.shape[1])
                          for c in range(k)])
    if with_lr and (SELECT is None or "none+lr" in SELECT):
        base = retrain(d, blocks, fit_x, fit_y, *(val or (None, None)), k)
        with torch.no_grad():
            rows["none+lr"] = acc(base.head(torch.from_numpy(scored.astype(np.float32))).argmax(1).numpy())
    for prefix, (t, s) in spaces.items():
        ti, si = head.inner(t), head.inner(s)
        p = head.proba(t)
        def want(m: str, prefix: str = prefix) -> bool:
            return SELECT is None or prefix + m in SELECT

        for m, w in label_shift(head, source, val if val is not None else (fit_x, fit_y), p, want).items():
            rows[prefix + m] = acc(reweighted(head.proba(s), w).argmax(1))
        if want("bnm"):
            rows[prefix + "bnm"] = acc(bnm(head, source, src_y, t, s, seed=SEED))
        if want("mcc"):
            rows[prefix + "mcc"] = acc(mcc(head, source, src_y, t, s, seed=SEED))
        if want("ce"):  # the same schedule without the MCC term: what the source fine-tuning alone does
            rows[prefix + "ce"] = acc(mcc(head, source, src_y, t, s, seed=SEED, tradeoff=0.0))
        if want("shot-im"):
            rows[prefix + "shot-im"] = acc(shot_im(head, t, s, 0.0))
        if want("shot"):
            rows[prefix + "shot"] = acc(shot_im(head, t, s, 0.3))
        if transductive and want("lp"):
            rows[prefix + "lp"] = acc(propagate(ti, p))
        for m in ("shot-pl", "kmeans", "lp"):
            c = None
            if m != "lp" and (want(m) or want(m + "+lr")):
                c = shot_centroids(ti, p) if m == "shot-pl" else kmeans_centroids(ti, src_means)
            if c is not None and want(m):
                rows[prefix + m] = acc(nearest(c, si))
            if with_lr and want(m + "+lr"):
                pseudo = nearest(c, ti) if c is not None else propagate(ti, p)
                fitted = retrain(d, blocks, np.concatenate([fit_x, t]), np.concatenate([fit_y, pseudo]),
                                 *(val or (None, None)), k)
                with torch.no_grad():
                    out = fitted.head(torch.from_numpy(s.astype(np.float32))).argmax(1).numpy()
                rows[prefix + m + "+lr"] = acc(out)
    rows["shift"] = float(moved)
    return rows


def run(names: list[str], feats: Path, with_lr: bool, halves_seeds: tuple[int, ...] = (0,)) -> None:
    table: dict[tuple[str, str], dict[str, float]] = {}
    for name in names:
        d = np.load(feats / f"{name}.npz")
        blocks = [int(b) for b in d["blocks"]]
        xtr, ytr = d["x_train"].astype(np.float64), d["y_train"]
        xv, yv = d["x_val"].astype(np.float64), d["y_val"]
        xt, yt = d["x_test"].astype(np.float64), d["y_test"]
        source = np.concatenate([xtr, xv])
        src_y = np.concatenate([ytr, yv])
        for seed in halves_seeds:  # other cuts of the test split in halves (seed 0: the benchmark's own)
            a, b = bench.halves(len(yt), seed)
            proto = "halves" if seed == bench.SEED else f"halves (seed {seed})"
            table[(name, proto)] = methods(d, "default", source, src_y, xtr, ytr, (xv, yv), xt[a], xt[b], yt[b],
                                           blocks, with_lr)
            print(name, proto, table[(name, proto)], flush=True)
        table[(name, "transductive")] = methods(d, "default", source, src_y, xtr, ytr, (xv, yv), xt, xt, yt,
                                                blocks, with_lr)
        print(name, "transductive", table[(name, "transductive")], flush=True)
        va, vb = bench.halves(len(yv), bench.SEED + 1)
        table[(name, "control")] = methods(d, "control", xtr, ytr, xtr, ytr, None, xv[va], xv[vb], yv[vb],
                                           blocks, with_lr)
        print(name, "control", table[(name, "control")], flush=True)
    cols = list(dict.fromkeys(c for r in table.values() for c in r))
    print("| set | protocol | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for (name, proto), r in table.items():
        print(f"| {name} | {proto} | " + " | ".join(f"{r[c]:.1f}" if c in r else "–" for c in cols) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("step", choices=("dump", "run"))
    parser.add_argument("sets")
    parser.add_argument("--cache", type=Path, default=Path("runs/adapt/cache"))
    parser.add_argument("--feats", "--out", dest="feats", type=Path, default=Path("runs/adapt/feats"))
    parser.add_argument("--no-retrain", action="store_true", help="skip the *+lr rows (the head retrained)")
    parser.add_argument("--methods", help="comma-separated rows to compute (default: all), e.g. mcc,js+mcc")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trained methods' batch order")
    parser.add_argument("--halves-seeds", default="0", help="the seeds of the cuts of the test split in halves "
                        "(comma-separated; 0 is the benchmark's own), e.g. 0,1,2,3,4")
    args = parser.parse_args()
    global SELECT, SEED
    SEED = args.seed
    SELECT = None if not args.methods else {m.strip() for m in args.methods.split(",")}
    names = [s.strip() for s in args.sets.split(",") if s.strip()]
    if args.step == "dump":
        for name in names:
            dump(name, args.cache, args.feats)
    else:
        run(names, args.feats, not args.no_retrain, tuple(int(v) for v in args.halves_seeds.split(",")))


if __name__ == "__main__":
    main()
