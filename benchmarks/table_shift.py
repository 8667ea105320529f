"""A table with a real shift: `fit TABLE --adapt-to TARGET_TABLE` and `transferkit shift` on Debian packages.

The rows are debtext's (`benchmarks/unseen_data.py`): a package's section (admin, games, …) from its
long description in training and from the one-line synopses of *other* packages at test. Each row
gets the package's own metadata from the same archive index (bookworm main's `Packages`): its
installed size (log KiB) and number of dependencies (numbers), its architecture (`all` or `amd64`)
and priority (categories). Nothing is generated; debtags, which name the section, are left out.

Protocol of `benchmarks/adapt.py`: the test split cut in halves by seed 0, half A the unlabelled
target, half B scored; transductive: the whole test split both. Rows: the default table model
(MiniLM + n-grams for the text column, standardised numbers, one-hot categories, a probe), the same
with `X_target` and `adapt_method` auto / standardize / coral, the labelled ceiling (the default model
fitted on the training rows plus half A WITH its labels: what those rows are worth labelled, the
reference for the unlabelled rows), and the per-column shift diagnostic
(`TabularTransferClassifier.column_blocks` + `commands.shift.column_shift`, what `transferkit shift`
prints). One feature cache for every row.

    python benchmarks/table_shift.py [--root /work/data/unseen] [--cache DIR] [--methods auto,standardize,coral]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import unseen_data

from adapt import SEED, halves

NUMBERS = ("log_installed_kib", "dependencies")
CATEGORIES = ("architecture", "priority")


def package_metadata(root: Path) -> dict[str, dict[str, object]]:
    """Package name → its numbers and categories, from the archive index the text set was built from."""
    text = (root / "apt" / "Packages").read_text(encoding="utf-8")
    out: dict[str, dict[str, object]] = {}
    for stanza in unseen_data._stanzas(text):
        name = stanza.get("Package")
        if not name or name in out:
            continue
        depends = [d for d in stanza.get("Depends", "").replace("\n", " ").split(",") if d.strip()]
        size = stanza.get("Installed-Size", "")
        out[name] = {"log_installed_kib": math.log1p(float(size)) if size.isdigit() else None,
                     "dependencies": float(len(depends)), "architecture": stanza.get("Architecture"),
                     "priority": stanza.get("Priority")}
    return out


def load_table(root: Path) -> dict[str, tuple[Any, list[str]]]:
    """split → (DataFrame of the model's columns, labels), every row with its package's metadata."""
    import pandas as pd

    meta = package_metadata(root)
    with open(root / "debtext" / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, tuple[Any, list[str]]] = {}
    missing = 0
    for split in ("train", "val", "test"):
        kept = []
        for r in rows:
            if r["split"] != split:
                continue
            m = meta.get(r["package"])
            if m is None:
                missing += 1
                continue
            kept.append({"text": r["text"], **m, "label": r["label"]})
        frame = pd.DataFrame(kept)
        out[split] = (frame.drop(columns=["label"]), list(frame["label"]))
    if missing:
        print(f"{missing} rows without their package in the index: left out")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=unseen_data.DATA_ROOT)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: a temporary folder)")
    parser.add_argument("--methods", default="auto,standardize,coral")
    parser.add_argument("--text-backbone", default=None, help="the text column's encoder (default: the table's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import pandas as pd

    from transferkit.commands.shift import column_shift
    from transferkit.estimators.tabular import TabularTransferClassifier

    cache = args.cache or Path(tempfile.mkdtemp(prefix="table-shift-cache-"))
    data = load_table(args.root)
    (train, y_train), (val, y_val), (test, y_test) = data["train"], data["val"], data["test"]
    a, b = halves(len(test), SEED)
    half_a, half_b = test.iloc[a].reset_index(drop=True), test.iloc[b].reset_index(drop=True)
    y_b = [y_test[i] for i in b]
    print(f"debtext as a table: {len(train)} train / {len(val)} val / {len(test)} test rows (halves {len(a)} / "
          f"{len(b)}), {len(set(y_train))} sections; columns: text, {', '.join(NUMBERS + CATEGORIES)}; "
          f"load average {os.getloadavg()[0]:.1f}")
    kwargs: dict[str, Any] = {"text_columns": ["text"], "numeric_columns": list(NUMBERS),
                              "categorical_columns": list(CATEGORIES), "cache_dir": cache, "progress": False,
                              **({"text_backbone": args.text_backbone} if args.text_backbone else {})}

    def fitted(method: str | None, target: Any = None) -> tuple[Any, float]:
        start = time.perf_counter()
        clf = TabularTransferClassifier(**kwargs, **({"adapt_method": method} if method else {}))
        clf.fit(train, y_train, X_val=val, y_val=y_val, X_target=target)
        return clf, time.perf_counter() - start

    plain, seconds = fitted(None)
    rows = [("default (no target)", plain.score(half_b, y_b), plain.score(test, y_test), f"{seconds:.0f} s", "")]
    for method in [m for m in args.methods.split(",") if m]:
        clf, seconds = fitted(method, half_a)
        whole, _ = fitted(method, test)
        text = (clf.adaptation_ or {}).get("columns", {}).get("text", {})
        rows.append((f"--adapt-to, {method}", clf.score(half_b, y_b), whole.score(test, y_test), f"{seconds:.0f} s",
                     str(text.get("why", text.get("applied", "")))[:150]))
    y_a = [y_test[i] for i in a]
    start = time.perf_counter()
    ceiling = TabularTransferClassifier(**kwargs).fit(pd.concat([train, half_a], ignore_index=True), y_train + y_a,
                                                      X_val=val, y_val=y_val)
    rows.append(("ceiling (half A labelled)", ceiling.score(half_b, y_b), float("nan"),
                 f"{time.perf_counter() - start:.0f} s", "not adaptation: half A's labels used"))
    print(f"\n{'row':28} {'half B':>8} {'transductive':>13} {'fit':>6}  text column")
    for name, half, trans, secs, why in rows:
        whole = "–" if math.isnan(trans) else f"{100 * trans:.1f}%"
        print(f"{name:28} {100 * half:7.1f}% {whole:>13} {secs:>6}  {why}")

    print("\nhow far is each column? (TARGET: the whole test split; what `transferkit shift` prints)")
    blocks = TabularTransferClassifier(**kwargs).column_blocks(train, y_train, test)
    for block in blocks:
        entry, _ = column_shift(block, method="auto", seed=SEED, name="debtext table")
        p, after = entry.get("p_value"), entry.get("domain_accuracy_aligned")
        aligned = "" if after is None else f" → {float(after):.1%} aligned"
        tested = "" if p is None else f"; {entry['test']} p = {float(p):.2g}"
        print(f"  {block.column:18} {block.kind:12} domain classifier {float(entry['domain_accuracy']):.1%}{aligned}"
              f"{tested}{'; shifted' if entry.get('shift_detected') else ''}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
