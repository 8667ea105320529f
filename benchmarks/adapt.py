"""Domain adaptation (`fit --adapt-to`): the shifted sets, half of the test inputs given without labels.

For each set built by `benchmarks/unseen_data.py` (icons: unseen icon themes; debtext: synopses of
unseen packages; speech: unseen voices) and the man-page set of `benchmarks/manpages.py` (unseen
packages), the test split's inputs are cut in two halves by a fixed seed: half A is given to
`--adapt-to` without its labels, half B is scored. Rows, all in this process, on one feature cache
per set (so every row reads the same features):

- `default`: the probe `transferkit fit` trains by default (its default backbone, views for images);
- `adapt-<method>`: the same, with `X_target` = half A and `adapt_method` auto, standardize, coral,
  self-training, none;
- peers on the same (un-augmented) features: `peer-plain` (standardised features + logistic
  regression) and `peer-coral` (the textbook CORAL of Sun, Feng & Saenko 2016, written here: source
  re-coloured with C_t + I after whitening with C_s + I, then the same regression; a block wider
  than 4,096 features — hashed n-grams — is left as it is, the textbook has no answer for it);
- `transductive`: the whole test split as the target, scored on the whole test split (beside
  `default` scored on the whole split);
- `control`: no shift — fitted on the training split alone, the in-domain validation split cut in
  halves (A the target, B scored): adaptation must not cost accuracy where there is no shift;
- `ceiling`: what half A's inputs are worth WITH their labels — the default probe fitted on the
  training split plus half A labelled (validation unchanged), half B scored. Not something
  `--adapt-to` can do; the reference the unlabelled rows are read against: a gain the labels
  themselves do not give, no use of the same inputs without them can be expected to give. Again
  with halves that share no unit of near-duplicates (`TEST_UNITS`; the default scored on that
  half B beside it): the random halves share them, and a label then teaches its near-duplicate.

Cost: adaptation's own seconds against a probe fit on warm features — the alignment (plus
self-training's refits), the shift diagnostic, and DEV's choice of the training views (importance
weights, scoring the probes' held-out validation probabilities their C grids kept: made only because a
target was given), `adaptation_over_warm_fit`;
CORAL on 1,280-d features with 5,000 target inputs (generated); peak RSS.
The machine is shared (2 cores, other jobs running): times are noisy, ratios are in one process.

    python benchmarks/adapt.py --sets icons,debtext,manpages [--root benchmarks/.data] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import unseen_data

METHODS = ("auto", "standardize", "coral", "self-training", "mcc", "none")
SEED = 0


#: per set, each test input's unit of near-duplicates, filled by `load_set`: an icon theme's drawing of one icon
#: name (the same design at several sizes), a voice's word (one word at several rates and pitches), a package
#: (debtext: one synopsis; man pages: up to 25 pages)
TEST_UNITS: dict[str, list[str]] = {}


def unit_halves(units: list[str], seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Halves of the test split that share no unit: the units cut in two by `seed`."""
    names = sorted(set(units))
    order = np.random.default_rng(seed).permutation(len(names))
    first = {names[i] for i in order[: len(names) // 2]}
    in_a = np.array([u in first for u in units])
    return np.flatnonzero(in_a), np.flatnonzero(~in_a)


def load_set(name: str, root: Path, quick: bool) -> tuple[str, dict[str, tuple[list[str], list[str]]]]:
    """(modality, {split: (inputs, labels)}) of a set; --quick keeps 10 training inputs per class."""
    if name == "manpages":
        import manpages

        train, test = manpages.build()
        rng = np.random.default_rng(SEED)
        order = rng.permutation(len(train.items))
        n_val = len(order) * 15 // 100
        pick = lambda idx: ([train.items[i] for i in idx], [train.labels[i] for i in idx])  # noqa: E731
        splits = {"val": pick(order[:n_val]), "train": pick(order[n_val:]), "test": (test.items, test.labels)}
        modality = "text"
        TEST_UNITS[name] = list(test.groups)
    else:
        manifest = root / name / "manifest.csv"
        if not manifest.is_file():
            raise SystemExit(f"{manifest} is missing: build it with benchmarks/unseen_data.py --root {root}")
        rows = list(csv.DictReader(manifest.open(encoding="utf-8")))
        key = "text" if "text" in rows[0] else "path"
        modality = {"icons": "image", "debtext": "text", "speech": "audio"}[name]
        splits = {}
        for s in ("train", "val", "test"):
            members = [r for r in rows if r["split"] == s]
            items = [r[key] if key == "text" else str((manifest.parent / r[key]).resolve()) for r in members]
            splits[s] = (items, [r["label"] for r in members])
        tests = [r for r in rows if r["split"] == "test"]
        TEST_UNITS[name] = [f"{r['group']}/{r['icon_name']}" if name == "icons" else
                            f"{r['voice']}/{r['label']}" if name == "speech" else r["package"] for r in tests]
    if quick:
        items, labels = splits["train"]
        seen: dict[str, int] = {}
        keep = [i for i, y in enumerate(labels) if seen.setdefault(y, 0) < 10 and not seen.update({y: seen[y] + 1})]
        splits["train"] = ([items[i] for i in keep], [labels[i] for i in keep])
    return modality, splits


def halves(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def take(split: tuple[list[str], list[str]], idx: np.ndarray) -> tuple[list[str], list[str]]:
    return [split[0][i] for i in idx], [split[1][i] for i in idx]


# -- the textbook peers (written here, on the probe's own features) ------------------------------------


def _sqrtm(c: np.ndarray, power: float) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.clip(w, 1e-12, None) ** power) @ v.T


def textbook_coral(source: np.ndarray, target: np.ndarray, blocks: list[int]) -> np.ndarray:
    """Sun, Feng & Saenko (2016), Algorithm 1: Ds = Ds · (Cs + I)^(-1/2) · (Ct + I)^(1/2), per block."""
    out, start = [], 0
    for width in blocks:
        s, t = source[:, start:start + width], target[:, start:start + width]
        if width > 4096:
            out.append(s)
        else:
            cs = np.cov(s, rowvar=False) + np.eye(width)
            ct = np.cov(t, rowvar=False) + np.eye(width)
            out.append(s @ _sqrtm(cs, -0.5) @ _sqrtm(ct, 0.5))
        start += width
    return np.concatenate(out, axis=1)


def logistic(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(scaler.transform(train_x), train_y)
    return clf.predict(scaler.transform(test_x))


# -- rows ----------------------------------------------------------------------------------------------


def accuracy(clf: Any, split: tuple[list[str], list[str]]) -> float:
    feats = clf.features(split[0])
    predicted = clf.classes_[clf.proba_from_features(feats.values).argmax(1)]
    truth = np.array([y for y, ok in zip(split[1], feats.ok, strict=True) if ok])
    return float((predicted == truth).mean())


ROW_GROUPS = ("default", "adapt", "peers", "transductive", "control", "ceiling")
#: row groups run through the CLI (long: only when named in --rows)
CLI_GROUPS = ("finetune", "auto-backbone")


def run_set(name: str, root: Path, quick: bool, out: Path, groups: tuple[str, ...] = ROW_GROUPS,
            methods: tuple[str, ...] = METHODS, cache_root: Path | None = None) -> dict[str, Any]:
    from transferkit import TransferClassifier
    from transferkit.backbones.registry import DEFAULT_BACKBONES
    from transferkit.cache import FeatureCache

    modality, splits = load_set(name, root, quick)
    backbone = DEFAULT_BACKBONES[modality]
    views = 2 if modality in ("image", "audio") else 0
    cache = FeatureCache((cache_root or out / "cache") / name)
    a_idx, b_idx = halves(len(splits["test"][0]))
    half_a, half_b = take(splits["test"], a_idx), take(splits["test"], b_idx)
    print(f"\n== {name} ({modality}, {backbone}): train {len(splits['train'][0])}, val {len(splits['val'][0])}, "
          f"test {len(splits['test'][0])} → target half A {len(half_a[0])}, scored half B {len(half_b[0])}",
          flush=True)

    def probe(**kw: Any) -> Any:
        return TransferClassifier(backbone, augment=views, cache_dir=cache, progress=False, seed=SEED, **kw)

    rows: list[dict[str, Any]] = []

    def record(row: str, acc: float, seconds: float, **extra: Any) -> None:
        rows.append({"set": name, "row": row, "accuracy": round(100 * acc, 2), "seconds": round(seconds, 1), **extra})
        print(f"  {row:<28} {100 * acc:6.2f}%  ({seconds:.1f}s) {json.dumps(extra) if extra else ''}", flush=True)

    train, val = splits["train"], splits["val"]
    started = time.perf_counter()
    default = probe().fit(*train, X_val=val[0], y_val=val[1])
    cold = time.perf_counter() - started
    record("default", accuracy(default, half_b), cold, cold_cache=True)
    started = time.perf_counter()
    probe().fit(*train, X_val=val[0], y_val=val[1])
    warm = time.perf_counter() - started
    record("default (warm features)", accuracy(default, half_b), warm)
    adapt_seconds: dict[str, float] = {}
    shift_seconds: dict[str, float] = {}
    views_seconds: dict[str, float] = {}  # DEV's choice of the views: only made because a target was given
    for method in methods if "adapt" in groups else ():
        started = time.perf_counter()
        clf = probe(adapt_method=method).fit(*train, X_val=val[0], y_val=val[1], X_target=half_a[0])
        took = time.perf_counter() - started
        adapt_seconds[method] = float(clf.adaptation_["seconds"])
        shift_seconds[method] = float(clf.adaptation_.get("shift_seconds", 0.0))
        views_seconds[method] = float(clf.adaptation_.get("views_seconds", 0.0))
        record(f"adapt-{method}", accuracy(clf, half_b), took, alignment_s=adapt_seconds[method],
               shift_diagnostic_s=shift_seconds[method], views_dev_s=views_seconds[method],
               alignment=clf.adaptation_.get("alignment"),
               why=clf.adaptation_.get("why"))
    cost = {"probe_fit_cold_s": round(cold, 1), "probe_fit_warm_s": round(warm, 1), "alignment_s": adapt_seconds,
            "shift_diagnostic_s": shift_seconds,
            "alignment_over_warm_fit": {k: round(v / warm, 3) for k, v in adapt_seconds.items()},
            "views_dev_s": views_seconds,
            "adaptation_over_warm_fit": {k: round((v + shift_seconds[k] + views_seconds[k]) / warm, 3)
                                         for k, v in adapt_seconds.items()},
            "alignment_and_diagnostic_over_warm_fit": {k: round((v + shift_seconds[k]) / warm, 3)
                                                       for k, v in adapt_seconds.items()}}
    if "peers" in groups:
        peers(default, train, half_a, half_b, record)
    if "transductive" in groups:
        whole = splits["test"]
        record("default, whole test", accuracy(default, whole), 0.0)
        started = time.perf_counter()
        clf = probe(adapt_method="auto").fit(*train, X_val=val[0], y_val=val[1], X_target=whole[0])
        record("transductive (auto, whole test)", accuracy(clf, whole), time.perf_counter() - started,
               alignment=clf.adaptation_.get("alignment"), why=clf.adaptation_.get("why"))
    if "control" in groups:
        # control: no shift — in-domain validation halves
        va, vb = halves(len(val[0]), SEED + 1)
        control_a, control_b = take(val, va), take(val, vb)
        base = probe().fit(*train)
        record("control: default", accuracy(base, control_b), 0.0)
        for method in methods:
            if method == "none":
                continue
            clf = probe(adapt_method=method).fit(*train, X_target=control_a[0])
            record(f"control: adapt-{method}", accuracy(clf, control_b), 0.0,
                   alignment=clf.adaptation_.get("alignment"), why=clf.adaptation_.get("why"))
    if "ceiling" in groups:
        labelled = (train[0] + half_a[0], train[1] + half_a[1])
        started = time.perf_counter()
        clf = probe().fit(*labelled, X_val=val[0], y_val=val[1])
        record("ceiling (half A labelled)", accuracy(clf, half_b), time.perf_counter() - started)
        # the same with halves that share no unit of near-duplicates (the random halves do: one icon at several
        # sizes, a package's pages): what labels of *other* units are worth
        ua, ub = unit_halves(TEST_UNITS[name])
        unit_a, unit_b = take(splits["test"], ua), take(splits["test"], ub)
        record("default, halves by unit", accuracy(default, unit_b), 0.0, units=len(set(TEST_UNITS[name])),
               scored=len(ub))
        started = time.perf_counter()
        clf = probe().fit(train[0] + unit_a[0], train[1] + unit_a[1], X_val=val[0], y_val=val[1])
        record("ceiling, halves by unit", accuracy(clf, unit_b), time.perf_counter() - started)
    for group in ("finetune", "auto-backbone"):
        if group in groups:
            cli_rows(group, name, modality, splits, half_a, half_b, out, cache_root or out / "cache", record)
    return {"set": name, "modality": modality, "backbone": backbone, "rows": rows, "cost": cost}


#: `finetune` rows: `--epochs` for `fit --strategy finetune` (None: fit's default); `--finetune-epochs`
FINETUNE_EPOCHS: int | None = None
#: `auto-backbone` rows: `--budget` minutes for `fit --backbone auto` (None: fit's default); `--auto-budget`
AUTO_BUDGET: float | None = None


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def cli_rows(group: str, name: str, modality: str, splits: dict[str, tuple[list[str], list[str]]],
             half_a: tuple[list[str], list[str]], half_b: tuple[list[str], list[str]], out: Path, cache_root: Path,
             record: Any) -> None:
    """Rows run through the CLI itself, each with and without the target on the same split, so the gain is read
    against its own baseline: `finetune` — `fit --strategy finetune [--adapt-to A]`; `auto-backbone` —
    `fit --backbone auto [--adapt-to A]`. The data is a manifest of the train and val splits (its `split`
    column keeps them), the target a manifest of half A's inputs alone (no labels), half B scored by
    `transferkit evaluate`."""
    import subprocess

    column = "text" if modality == "text" else "path"
    folder = out / "cli" / name
    data = _write_csv(folder / "data.csv", [column, "label", "split"],
                      [[x, y, s] for s in ("train", "val") for x, y in zip(*splits[s], strict=True)])
    target = _write_csv(folder / "target-half-a.csv", [column], [[x] for x in half_a[0]])
    scored = _write_csv(folder / "scored-half-b.csv", [column, "label"], [list(r) for r in zip(*half_b, strict=True)])
    base = [sys.executable, "-m", "transferkit"]
    column_flag = ["--text-column", "text"] if modality == "text" else []
    flags = (["--strategy", "finetune"] + (["--epochs", str(FINETUNE_EPOCHS)] if FINETUNE_EPOCHS else [])
             if group == "finetune" else
             ["--backbone", "auto"] + (["--budget", str(AUTO_BUDGET)] if AUTO_BUDGET else []))
    for adapted in (False, True):
        run = folder / f"{group}{'-adapt' if adapted else ''}"
        command = [*base, "fit", str(data), "--out", str(run), "--overwrite", "--seed", str(SEED), "--json",
                   "--cache-dir", str(cache_root / name), *column_flag, *flags,
                   *(["--adapt-to", str(target)] if adapted else [])]
        print("  $ " + " ".join(command[1:]), flush=True)
        started = time.perf_counter()
        fitted = subprocess.run(command, capture_output=True, text=True)
        took = time.perf_counter() - started
        (folder / f"{run.name}.fit.log").write_text(fitted.stdout + fitted.stderr)
        if fitted.returncode:
            record(f"{group}{' --adapt-to' if adapted else ''}", float("nan"), took,
                   error=(fitted.stderr or fitted.stdout).strip().splitlines()[-1:])
            continue
        scoring = subprocess.run([*base, "evaluate", str(run), str(scored), "--json", "--cache-dir",
                                  str(cache_root / name), *column_flag], capture_output=True, text=True)
        if scoring.returncode:
            record(f"{group}{' --adapt-to' if adapted else ''}", float("nan"), took,
                   error=(scoring.stderr or scoring.stdout).strip().splitlines()[-1:])
            continue
        metrics = json.loads(scoring.stdout[scoring.stdout.index("{"):])
        manifest = json.loads((run / "transferkit.json").read_text()) if (run / "transferkit.json").is_file() else {}
        ranking = manifest.get("ranking") or {}
        record(f"{group}{' --adapt-to' if adapted else ''}", float(metrics["accuracy"]), took,
               load_average_1min=round(os.getloadavg()[0], 1), backbone=(manifest.get("backbone") or {}).get("name"),
               winner=ranking.get("winner"), criterion=ranking.get("criterion"))


def peers(plain: Any, train: tuple[list[str], list[str]], half_a: tuple[list[str], list[str]],
          half_b: tuple[list[str], list[str]], record: Any) -> None:
    """The textbook peers on the default probe's own (un-augmented, cached) features, fitted by hand."""
    fx = {k: np.asarray(plain.features(v[0]).values, np.float64) for k, v in
          (("train", train), ("a", half_a), ("b", half_b))}
    truth_b = np.array(half_b[1])
    started = time.perf_counter()
    record("peer-plain (LR, same features)", float((logistic(fx["train"], train[1], fx["b"]) == truth_b).mean()),
           time.perf_counter() - started)
    started = time.perf_counter()
    blocks = list(plain.backbone_.feature_blocks() or [fx["train"].shape[1]])
    recoloured = textbook_coral(fx["train"], fx["a"], blocks)
    record("peer-coral (textbook)", float((logistic(recoloured, train[1], fx["b"]) == truth_b).mean()),
           time.perf_counter() - started)


def coral_cost() -> dict[str, float]:
    """CORAL (with its shrinkage) on 1,280-d features: 5,000 source and 5,000 target inputs, generated."""
    from transferkit.adapt import fit_coral

    rng = np.random.default_rng(SEED)
    mixing = rng.normal(size=(1280, 1280)) / 40
    source = rng.normal(size=(5000, 1280)) @ mixing
    target = rng.normal(size=(5000, 1280)) @ mixing * 1.5 + 0.3
    started, cpu = time.perf_counter(), time.process_time()
    fit_coral(source, target)
    # CPU seconds beside wall seconds: on a shared machine the wall clock counts the other jobs' turns,
    # the CPU time what this fit itself used (both cores together)
    return {"coral_1280d_5000_target_s": round(time.perf_counter() - started, 2),
            "coral_1280d_5000_target_cpu_s": round(time.process_time() - cpu, 2),
            "load_average_1min": round(os.getloadavg()[0], 1)}


def diagnostic_cost() -> dict[str, float]:
    """The shift record every adapted fit keeps (domain classifier before and after, per-class rows, map) on
    generated features of debtext's size: 16,768-d, 3,000 source rows (20 classes) and 1,000 target rows."""
    from transferkit.adapt.shift_diagnostic import shift_record

    rng = np.random.default_rng(SEED)
    source = rng.standard_normal((3000, 16768))
    target = rng.standard_normal((1000, 16768)) + 0.05
    labels = [f"c{i % 20}" for i in range(len(source))]
    shift_record(source[:50, :300], target[:50, :300], labels[:50])  # imports outside the timing
    started, cpu = time.perf_counter(), time.process_time()
    record = shift_record(source, target, labels, target_aligned=target - 0.05, alignment="standardize")
    return {"diagnostic_16768d_s": round(time.perf_counter() - started, 2),
            "diagnostic_16768d_cpu_s": round(time.process_time() - cpu, 2),
            "domain_accuracy": record["domain_accuracy"], "domain_accuracy_aligned": record["domain_accuracy_aligned"],
            "load_average_1min": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", default="icons,debtext,manpages,speech")
    parser.add_argument("--root", type=Path, default=unseen_data.DATA_ROOT,
                        help="where benchmarks/unseen_data.py built the sets (default benchmarks/.data)")
    parser.add_argument("--out", type=Path, default=Path("runs/adapt"))
    parser.add_argument("--cache", type=Path, default=None,
                        help="the feature caches' root, one folder per set (default OUT/cache; reuse an earlier run's)")
    parser.add_argument("--quick", action="store_true", help="10 training inputs per class (a smoke run)")
    parser.add_argument("--cost-only", action="store_true", help="only the generated CORAL timing")
    parser.add_argument("--rows", default=",".join(ROW_GROUPS),
                        help=f"row groups to run, of {','.join(ROW_GROUPS + CLI_GROUPS)} (default: "
                             f"{','.join(ROW_GROUPS)}; `default` always runs)")
    parser.add_argument("--finetune-epochs", type=int, default=None,
                        help="the finetune rows' --epochs (default: fit's own default)")
    parser.add_argument("--auto-budget", type=float, default=None,
                        help="the auto-backbone rows' --budget minutes (default: fit's own rule)")
    parser.add_argument("--methods", default=",".join(METHODS), help="the adapt methods of the adapt rows")
    args = parser.parse_args(argv)
    global FINETUNE_EPOCHS, AUTO_BUDGET
    FINETUNE_EPOCHS, AUTO_BUDGET = args.finetune_epochs, args.auto_budget
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cost": coral_cost()}
    cost = results["cost"]
    print(f"CORAL, 1,280-d, 5,000 + 5,000 inputs: {cost['coral_1280d_5000_target_s']}s wall, "
          f"{cost['coral_1280d_5000_target_cpu_s']}s CPU (load average {cost['load_average_1min']} on "
          f"{os.cpu_count()} cores)", flush=True)
    diag = results["diagnostic_cost"] = diagnostic_cost()
    print(f"shift diagnostic, 16,768-d, 3,000 + 1,000 rows: {diag['diagnostic_16768d_s']}s wall, "
          f"{diag['diagnostic_16768d_cpu_s']}s CPU (load average {diag['load_average_1min']}); domain accuracy "
          f"{diag['domain_accuracy']:.3f} before, {diag['domain_accuracy_aligned']:.3f} after alignment", flush=True)
    if not args.cost_only:
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            try:
                results[name] = run_set(name, args.root, args.quick, args.out,
                                        tuple(g.strip() for g in args.rows.split(",") if g.strip()),
                                        tuple(m.strip() for m in args.methods.split(",") if m.strip()), args.cache)
            except SystemExit as exc:
                print(f"== {name}: skipped: {exc}", flush=True)
                results[name] = {"error": str(exc)}
            (args.out / "adapt.json").write_text(json.dumps(results, indent=2) + "\n")
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"peak RSS {results['peak_rss_mb']} MB (shared 2-core machine)", flush=True)
    (args.out / "adapt.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
