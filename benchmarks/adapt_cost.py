"""What `fit --adapt-to` spends on its own, on dumped features: auto's rule and the shift diagnostic, against
an earlier commit's code in the same process.

On the features `benchmarks/adapt_research.py dump` saved (x_train + x_val the source, half A of x_test the
target, as `benchmarks/adapt.py` cuts it), this times what a probe fit with `--adapt-to` adds beyond the
features: `fit_alignment(..., "auto")` (the shift test, then James–Stein standardisation; the probe's
`adaptation_["seconds"]`) and `shift_record` (its `adaptation_["shift_seconds"]`), with the aligned target
when auto aligns. With `--against REF`, the same calls from commit REF's sources (`git archive`, its
package renamed `transferkit_ref` in a temporary folder, removed afterwards) alternate with the working
tree's, after one warm-up call each (imports outside the timing), and every number both give is compared:
the shift test, the James–Stein factors, the alignment's float32 tensors and the whole shift record, on the
halves and on the control (train alone; half of the validation split the target).

    python benchmarks/adapt_cost.py --sets manpages --feats /work/runs/adapt7/feats --against main --repeats 8

The machine is shared: medians of alternating calls, wall and CPU seconds, the load average printed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEED = 0


def load(path: Path) -> dict[str, Any]:
    """The halves protocol's source, target and labels of a dumped set, and its control's."""
    d = np.load(path)
    order = np.random.default_rng(SEED).permutation(len(d["x_test"]))  # benchmarks/adapt.py's halves
    half_a = np.sort(order[: len(order) // 2])
    val = np.sort(np.random.default_rng(SEED + 1).permutation(len(d["x_val"]))[: len(d["x_val"]) // 2])
    blocks = [int(b) for b in d["blocks"]]
    return {"blocks": blocks, "protocols": {
        "halves": (np.concatenate([d["x_train"], d["x_val"]]).astype(np.float64),
                   d["x_test"][half_a].astype(np.float64),
                   [str(v) for v in np.concatenate([d["y_train"], d["y_val"]])]),
        "control": (d["x_train"].astype(np.float64), d["x_val"][val].astype(np.float64),
                    [str(v) for v in d["y_train"]])}}


def ref_package(ref: str, into: Path) -> str:
    """Commit `ref`'s `src/transferkit` extracted under `into`, renamed `transferkit_ref`; its import path."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src/transferkit"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "src" / "transferkit_ref"
    (into / "src" / "transferkit").rename(package)
    for file in package.rglob("*.py"):
        text = file.read_text()
        text = re.sub(r"\btransferkit\.(?=[a-z_])", "transferkit_ref.", text)
        text = re.sub(r"\bfrom transferkit import\b", "from transferkit_ref import", text)
        file.write_text(text)
    return str(into / "src")


def modules(package: str) -> tuple[ModuleType, ModuleType]:
    return (importlib.import_module(f"{package}.adapt.align"),
            importlib.import_module(f"{package}.adapt.shift_diagnostic"))


def run(align: ModuleType, diagnostic: ModuleType, source: np.ndarray, target: np.ndarray, labels: list[str],
        blocks: list[int]) -> tuple[Any, dict[str, Any], float, float, float]:
    """(alignment, shift record, seconds of the rule, seconds of the diagnostic, CPU seconds of both)."""
    cpu, started = time.process_time(), time.perf_counter()
    alignment = align.fit_alignment(source, target, "auto", blocks=blocks)
    rule = time.perf_counter() - started
    moved, _ = align.auto_outcome(alignment)
    aligned = alignment.apply(target) if moved else None
    started = time.perf_counter()
    record = diagnostic.shift_record(source, target, labels, target_aligned=aligned,
                                     alignment=alignment.method if moved else None)
    return alignment, record, rule, time.perf_counter() - started, time.process_time() - cpu


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> list[str]:
    """What differs between two `run` results (empty: every number the same to the bit)."""
    differ = []
    if a[0].info != b[0].info:
        differ.append("alignment info " + ", ".join(k for k in a[0].info if a[0].info[k] != b[0].info.get(k)))
    ta, tb = a[0].module().state_dict(), b[0].module().state_dict()
    if ta.keys() != tb.keys() or any(not bool((ta[k] == tb[k]).all()) for k in ta):
        differ.append("alignment tensors")
    if a[1] != b[1]:
        differ.append("shift record")
    return differ


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", default="manpages")
    parser.add_argument("--feats", type=Path, default=Path("runs/adapt/feats"),
                        help="where adapt_research.py dump wrote SET.npz")
    parser.add_argument("--against", default=None, help="a commit whose code is timed beside the working tree's")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    versions = {"new": modules("transferkit")}
    scratch = Path(tempfile.mkdtemp(prefix="adapt_cost_")) if args.against else None
    try:
        if scratch is not None:
            sys.path.insert(0, ref_package(args.against, scratch))
            versions = {args.against: modules("transferkit_ref"), **versions}
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            data = load(args.feats / f"{name}.npz")
            blocks = data["blocks"]
            for protocol, (source, target, labels) in data["protocols"].items():
                results = {tag: run(*mods, source, target, labels, blocks) for tag, mods in versions.items()}
                decided = {tag: r[0].info.get("shift_detected", r[0].info.get("block0_shift_detected"))
                           for tag, r in results.items()}
                differ = same(*results.values()) if len(results) == 2 else []
                print(f"{name} {protocol}: shift detected {decided}; "
                      + (f"DIFFER: {', '.join(differ)}" if differ else "every number the same" if len(results) == 2
                         else ""), flush=True)
            source, target, labels = data["protocols"]["halves"]
            for mods in versions.values():  # warm-up: imports outside the timing
                run(*mods, source[:60, :400], target[:60, :400], labels[:60], [400])
            times: dict[str, list[tuple[float, float, float]]] = {tag: [] for tag in versions}
            for repeat in range(args.repeats):
                for tag in list(versions) if repeat % 2 == 0 else list(versions)[::-1]:
                    times[tag].append(run(*versions[tag], source, target, labels, blocks)[2:])
            load_average = os.getloadavg()[0]
            medians = {tag: np.median(np.array(t), axis=0) for tag, t in times.items()}
            for tag, (rule, diag, cpu) in medians.items():
                print(f"{name} {tag}: median of {args.repeats}: auto's rule {rule:.2f} s, diagnostic {diag:.2f} s "
                      f"(CPU {cpu:.2f} s both; load {load_average:.1f} on {os.cpu_count()} cores)", flush=True)
            if len(medians) == 2:
                (r0, d0, _), (r1, d1, _) = medians.values()
                print(f"{name} new/{args.against}: rule {r1 / r0:.2f}, diagnostic {d1 / d0:.2f}, together "
                      f"{(r1 + d1) / (r0 + d0):.2f}", flush=True)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
