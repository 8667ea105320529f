"""Data it has not seen: transferkit against hand-written peers on sets with a train/test shift.

For each set built by `benchmarks/unseen_data.py` (icons: unseen icon themes; debtext: synopses
of unseen packages after training on long descriptions; speech: unseen speakers), on the same
splits, side by side:

- `transferkit fit MANIFEST --json` (the default) and `transferkit fit MANIFEST --backbone auto`,
  run as a user runs them (the CLI, a cold feature cache of their own). The manifest's `split`
  column is honoured, so fit's test split is the shifted one; the benchmark checks this (fit's
  test count must equal the manifest's test rows) and scores the saved model again with
  `transferkit evaluate RUN TEST_ROWS`, which must agree with what fit printed.
- the hand-written peers of `_peers.py` (Keras recipe, naive timm probe, pixels + LR; TF-IDF +
  LR, MiniLM + LR; MFCC statistics + LR, GE2E + LR), in this process.

Each row has the accuracy on the shifted test split, on the in-domain val split, the wall time
and the CPU time (user + system of every thread and child; the machine is shared, so wall time
is noisy and CPU time is the steadier figure). One table is printed and written to
OUT/unseen.json and OUT/unseen.csv.

    python benchmarks/unseen.py                        # all sets, all rows (about 20 min on 2 cores)
    python benchmarks/unseen.py --quick                # a stratified subsample of every split
    python benchmarks/unseen.py --sets text --rows default,tfidf-lr
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import unseen_data
from _peers import PEERS, PeerResult, Split

SET_ALIASES = {"image": "icons", "text": "debtext", "audio": "speech"}
TRANSFERKIT_ROWS = {"default": [], "auto": ["--backbone", "auto"], "strategy-auto": ["--strategy", "auto"],
                    "augment": ["--augment", "2"], "augment-tta": ["--augment", "2", "--tta", "2"]}
#: rows run on some modalities only: --strategy auto (its fine-tuning estimate and time) on images;
#: training and test-time views on images and audio (text has none)
ROW_MODALITIES = {"strategy-auto": {"image"}, "augment": {"image", "audio"}, "augment-tta": {"image", "audio"}}
#: rows run only when named in --rows
OPT_IN_ROWS = {"augment", "augment-tta"}
MODALITY_FLAGS = {"image": [], "text": ["--text-column", "text"], "audio": ["--modality", "audio"]}
# --quick: at most this many rows per class of each split
QUICK_PER_CLASS = {"train": 12, "val": 3, "test": 6}


@dataclass
class Row:
    set: str
    row: str
    kind: str  # transferkit | peer | peer (from scratch)
    what: str
    test_accuracy: float | None
    val_accuracy: float | None
    wall_s: float
    cpu_s: float
    test_by_group: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _absolute(rows: list[dict[str, str]], base: Path) -> list[dict[str, str]]:
    if "path" not in rows[0]:
        return [dict(r) for r in rows]
    return [{**r, "path": str((base / r["path"]).resolve())} for r in rows]


def _subsample(rows: list[dict[str, str]], name: str) -> list[dict[str, str]]:
    """A stratified, deterministic subsample: QUICK_PER_CLASS rows of each class in each split."""
    key = "path" if "path" in rows[0] else "text"
    by: dict[tuple[str, str], list[dict[str, str]]] = collections.defaultdict(list)
    for r in rows:
        by[(r["split"], r["label"])].append(r)
    kept = []
    for (split, _label), members in sorted(by.items()):
        members.sort(key=lambda r: unseen_data.unit_hash("quick", name, r[key]))
        kept += members[: QUICK_PER_CLASS[split]]
    return kept


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class Prepared:
    name: str
    modality: str
    manifest: Path  # what fit reads
    test_manifest: Path  # the test rows alone, for evaluate
    group_manifests: dict[str, Path]  # the test rows of each test group, when there are several
    splits: dict[str, Split]
    counts: dict[str, int]
    groups: dict[str, list[str]]
    sha256: str


def prepare(name: str, out: Path, quick: bool, data_root: Path) -> Prepared:
    built = unseen_data.build([name], data_root)[name]
    rows = _absolute(unseen_data.read_manifest(built), built.parent)
    manifest = built
    if quick:
        rows = _subsample(rows, name)
        manifest = _write_csv(out / "manifests" / f"{name}-quick.csv", rows)
    suffix = "-quick" if quick else ""
    test_rows = [r for r in rows if r["split"] == "test"]
    test_manifest = _write_csv(out / "manifests" / f"{name}-test{suffix}.csv", test_rows)
    test_groups = sorted({r["group"] for r in test_rows})
    group_manifests = {} if len(test_groups) < 2 else {
        g: _write_csv(out / "manifests" / f"{name}-test-{g}{suffix}.csv", [r for r in test_rows if r["group"] == g])
        for g in test_groups}
    item = "path" if "path" in rows[0] else "text"
    splits = {}
    for s in ("train", "val", "test"):
        members = [r for r in rows if r["split"] == s]
        splits[s] = Split([r[item] for r in members], [r["label"] for r in members], [r["group"] for r in members])
    return Prepared(
        name=name, modality=unseen_data.MODALITY[name], manifest=manifest, test_manifest=test_manifest,
        group_manifests=group_manifests, splits=splits, counts={s: len(v.items) for s, v in splits.items()},
        groups={s: sorted({r["group"] for r in rows if r["split"] == s}) for s in ("train", "val", "test")},
        sha256=hashlib.sha256(manifest.read_bytes()).hexdigest(),
    )


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _transferkit() -> list[str]:
    script = Path(sys.executable).parent / "transferkit"
    if script.is_file():
        return [str(script)]
    found = shutil.which("transferkit")
    if found is None:
        raise SystemExit("transferkit is not installed in this environment (pip install -e '.[zoo]')")
    return [found]


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def _run(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    wall, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return result, time.perf_counter() - wall, _children_cpu() - cpu


def _json_from(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    value = json.loads(stdout[start:])
    if not isinstance(value, dict):
        raise ValueError("the JSON output is not an object")
    return value


def run_transferkit(data: Prepared, row: str, out: Path, precision: str | None) -> Row:
    run_dir, cache = out / "runs" / f"{data.name}-{row}", out / "cache" / f"{data.name}-{row}"
    shutil.rmtree(cache, ignore_errors=True)  # a cold cache: the time a user's first fit takes
    command = [*_transferkit(), "fit", str(data.manifest), *MODALITY_FLAGS[data.modality], *TRANSFERKIT_ROWS[row],
               "--out", str(run_dir), "--overwrite", "--cache-dir", str(cache), "--seed", "0", "--json"]
    if precision:
        command += ["--precision", precision]
    flags = [*TRANSFERKIT_ROWS[row], *(["--precision", precision] if precision else [])]
    what = "transferkit fit" + (" " + " ".join(flags) if flags else " (defaults)")
    printable = " ".join(command)
    print(f"  $ {printable}", flush=True)
    load = _load()
    result, wall, cpu = _run(command)
    if result.returncode != 0:
        return Row(data.name, row, "transferkit", what, None, None, wall, cpu, details={"command": printable},
                   error=f"exit {result.returncode}: {(result.stderr or result.stdout).strip()[-1500:]}")
    report = _json_from(result.stdout)
    details: dict[str, Any] = {"command": printable, "load_before": load, "load_after": _load(), "fit": report}
    val = None
    choice = report.get("head_choice") or {}
    if "val_accuracy_by_C" in choice and "C" in choice:
        val = choice["val_accuracy_by_C"].get(str(choice["C"]))
    # the test split must be the manifest's (shifted) test rows, and evaluate must agree with fit
    problems = []
    if report.get("n_test") != data.counts["test"]:
        problems.append(f"fit tested on {report.get('n_test')} rows, the manifest has {data.counts['test']} test rows")
    evaluate = [*_transferkit(), "evaluate", str(run_dir), str(data.test_manifest), "--cache-dir", str(cache), "--json"]
    checked, _, _ = _run(evaluate)
    if checked.returncode != 0:
        problems.append(f"`{' '.join(evaluate)}` failed: {(checked.stderr or checked.stdout).strip()[-800:]}")
    else:
        scored = _json_from(checked.stdout)
        details["evaluate_accuracy"] = scored.get("accuracy")
        if scored.get("n") != data.counts["test"] or abs(float(scored["accuracy"]) - float(report["accuracy"])) > 1e-9:
            problems.append(f"evaluate on the test rows: n={scored.get('n')} accuracy={scored.get('accuracy')}; "
                            f"fit printed n_test={report.get('n_test')} accuracy={report.get('accuracy')}")
    by_group = {}
    for group, path in data.group_manifests.items():
        scored_group, _, _ = _run([*_transferkit(), "evaluate", str(run_dir), str(path), "--cache-dir", str(cache),
                                   "--json"])
        if scored_group.returncode == 0:
            by_group[group] = float(_json_from(scored_group.stdout)["accuracy"])
        else:
            problems.append(f"evaluate on test group {group} failed: {scored_group.stderr.strip()[-300:]}")
    details["test_split_checked"] = not problems
    if problems:
        details["problems"] = problems
    chosen = f"{report.get('backbone')} + {report.get('head')}, {report.get('precision')}"
    decision = report.get("strategy_decision")
    if decision:
        chosen += (f"; --strategy auto → {decision['strategy']} ({decision['rule']}), estimated "
                   f"{decision['estimated_minutes']:.1f} min, took {decision.get('actual_minutes', 0):.1f} min")
        if decision.get("compared"):
            kept = decision["compared"]
            chosen += (f", kept the {kept['kept']} (val {100 * kept['val_accuracy_probe']:.1f}% default probe, "
                       f"{100 * kept['val_accuracy_finetuned']:.1f}% fine-tuned)")
    return Row(data.name, row, "transferkit", f"{what} → {chosen}",
               float(report["accuracy"]), None if val is None else float(val), wall, cpu, by_group, details)


def run_peer(data: Prepared, name: str) -> Row:
    function, what, scratch = PEERS[data.modality][name]
    kind = "peer (from scratch)" if scratch else "peer"
    print(f"  peer {name}: {what}", flush=True)
    load, wall, cpu = _load(), time.perf_counter(), time.process_time()
    try:
        result: PeerResult = function(data.splits["train"], data.splits["val"], data.splits["test"])
    except Exception as exc:  # a broken peer is a row with its error, not a lost run
        return Row(data.name, name, kind, what, None, None, time.perf_counter() - wall, time.process_time() - cpu,
                   error=f"{type(exc).__name__}: {exc}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    test, val = data.splits["test"], data.splits["val"]
    hits = [p == y for p, y in zip(result.test_predictions, test.labels, strict=True)]
    by_group = {}
    if data.group_manifests:
        for group in sorted(set(test.groups)):
            mine = [h for h, g in zip(hits, test.groups, strict=True) if g == group]
            by_group[group] = sum(mine) / len(mine)
    val_accuracy = sum(p == y for p, y in zip(result.val_predictions, val.labels, strict=True)) / len(val.labels)
    return Row(data.name, name, kind, what, sum(hits) / len(hits), val_accuracy, wall, cpu, by_group,
               {**result.notes, "load_before": load, "load_after": _load()})


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "   —  " if value is None else f"{100 * value:6.1f}"


def print_table(rows: Sequence[Row], prepared: dict[str, Prepared]) -> None:
    print("\n" + "=" * 118)
    print(f"{'set':8s} {'row':13s} {'test %':>6s} {'val %':>6s} {'wall s':>7s} {'cpu s':>7s}  what")
    print(f"{'':8s} {'':13s} {'shift':>6s} {'in-dom':>6s}")
    for name, data in prepared.items():
        print("-" * 118)
        groups = f"train on {', '.join(data.groups['train'])}; test on {', '.join(data.groups['test'])}"
        print(f"{name} ({data.modality}): train {data.counts['train']}, val {data.counts['val']}, "
              f"test {data.counts['test']}; {groups}")
        for r in (r for r in rows if r.set == name):
            what = r.what if r.error is None else f"FAILED {r.error.splitlines()[-1][:80]}"
            flag = "" if r.details.get("test_split_checked", True) else "  [test split check FAILED]"
            groups = " ".join(f"{g} {100 * a:.1f}" for g, a in r.test_by_group.items())
            groups = f" [test by group: {groups}]" if groups else ""
            print(f"{'':8s} {r.row:13s} {_pct(r.test_accuracy)} {_pct(r.val_accuracy)} {r.wall_s:7.1f} "
                  f"{r.cpu_s:7.1f}  {what}{groups}{flag}")
        mine = {r.row: r for r in rows if r.set == name and r.kind == "transferkit" and r.test_accuracy is not None}
        peers = [r for r in rows if r.set == name and r.kind != "transferkit" and r.test_accuracy is not None]
        if peers:
            best = max(peers, key=lambda r: r.test_accuracy or 0.0)
            for row, r in mine.items():
                gap = 100 * ((r.test_accuracy or 0.0) - (best.test_accuracy or 0.0))
                print(f"{'':8s} → {row} minus the best peer ({best.row}): {gap:+.1f} points")
    print("=" * 118)


def write_outputs(out: Path, rows: Sequence[Row], prepared: dict[str, Prepared], args: argparse.Namespace,
                  wall: float) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "quick": args.quick, "total_wall_s": wall,
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "sets": {n: {"manifest": str(p.manifest), "sha256": p.sha256, "counts": p.counts, "groups": p.groups}
                 for n, p in prepared.items()},
    }
    (out / "unseen.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    with (out / "unseen.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["set", "row", "kind", "test_accuracy", "val_accuracy", "test_by_group", "wall_s", "cpu_s",
                         "what", "error"])
        for r in rows:
            writer.writerow([r.set, r.row, r.kind, r.test_accuracy, r.val_accuracy, json.dumps(r.test_by_group),
                             f"{r.wall_s:.1f}", f"{r.cpu_s:.1f}", r.what, r.error or ""])
    print(f"written: {out / 'unseen.json'}, {out / 'unseen.csv'}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", default="image,text,audio",
                        help="comma-separated: image (icons), text (debtext), audio (speech)")
    parser.add_argument("--rows", default=None,
                        help="comma-separated row names (default: all but augment, augment-tta): default, auto, "
                             "strategy-auto, augment (--augment 2), augment-tta (and --tta 2), and the peers "
                             f"{', '.join(n for peers in PEERS.values() for n in peers)}")
    parser.add_argument("--quick", action="store_true",
                        help=f"a stratified subsample (per class: {QUICK_PER_CLASS}) so a run takes minutes")
    parser.add_argument("--out", type=Path, default=Path("runs/unseen"), help="results, runs and caches go here")
    parser.add_argument("--data", type=Path, default=unseen_data.DATA_ROOT, help="where the sets are built")
    parser.add_argument("--precision", default=None, help="passed to transferkit fit (default: its own, auto)")
    args = parser.parse_args(argv)
    names = [SET_ALIASES.get(s.strip(), s.strip()) for s in args.sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in unseen_data.BUILDERS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from image, text, audio")
    wanted = None if args.rows is None else {r.strip() for r in args.rows.split(",") if r.strip()}
    started = time.perf_counter()
    prepared: dict[str, Prepared] = {}
    rows: list[Row] = []
    for name in names:
        data = prepare(name, args.out, args.quick, args.data)
        prepared[name] = data
        print(f"\n== {name}: {data.counts} — test groups {', '.join(data.groups['test'])}", flush=True)
        for row_name in [*TRANSFERKIT_ROWS, *PEERS[data.modality]]:
            if (row_name not in wanted) if wanted is not None else row_name in OPT_IN_ROWS:
                continue
            if data.modality not in ROW_MODALITIES.get(row_name, {data.modality}):
                continue
            if row_name in TRANSFERKIT_ROWS:
                row = run_transferkit(data, row_name, args.out, args.precision)
            else:
                row = run_peer(data, row_name)
            rows.append(row)
            status = f"FAILED: {row.error[-300:]}" if row.error else \
                f"test {_pct(row.test_accuracy).strip()}%  val {_pct(row.val_accuracy).strip()}%"
            print(f"    {row_name}: {status}  ({row.wall_s:.1f} s wall, {row.cpu_s:.1f} s cpu)", flush=True)
    print_table(rows, prepared)
    write_outputs(args.out, rows, prepared, args, time.perf_counter() - started)


if __name__ == "__main__":
    main()
