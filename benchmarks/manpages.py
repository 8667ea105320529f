"""A second shifted text set: man pages by manual section, tested on packages never seen in training.

Reads the English man pages installed on this machine (`/usr/share/man/man{1,3,5,7,8}`), keeps each
page's NAME line and the start of its DESCRIPTION (roff markup stripped), and labels it with its
section: user commands, library functions, file formats, overviews, administration (section 2 is
left out: every system-call page comes from one package, so it could not be held out). The owning
Debian package (from dpkg's file lists) is the group: 30% of the packages, drawn with a fixed seed,
are the test set, so no test page shares a package with a training page — the vocabulary of a
package (its command names, its jargon) cannot carry over. At most 25 pages per package and 400 per
section, so that one large package (e.g. a cloud CLI with thousands of pages) does not dominate.

The figures depend on what is installed here (the set is printed); the data is real and nothing
is generated. It compares, on the same splits, transferkit's text default (a probe on MiniLM +
hashed n-grams) and its parts alone against the hand-written peers of `benchmarks/unseen.py`.

    python benchmarks/manpages.py [--csv runs/manpages.csv]
"""

from __future__ import annotations

import argparse
import collections
import csv
import glob
import gzip
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _peers import Split, minilm_logreg, tfidf_logreg

SECTIONS = {"1": "user commands", "3": "library functions", "5": "file formats", "7": "overviews",
            "8": "administration"}
PER_PACKAGE, PER_SECTION, TEST_PACKAGES, SEED = 25, 400, 0.3, 0


def _owners() -> dict[str, str]:
    owner = {}
    for listing in glob.glob("/var/lib/dpkg/info/*.list"):
        package = Path(listing).stem.split(":")[0]
        with open(listing, errors="replace") as fh:
            for line in fh:
                owner[line.strip()] = package
    return owner


def _plain(line: str) -> str:
    line = re.sub(r"\\f[BIRP]|\\f\(..|\\\*\(..|\\\*.|\\\(..|\\[e&-]|\\s[-+]?\d", "", line)
    return re.sub(r"\s+", " ", re.sub(r"\\.", "", line)).strip()


def page_text(path: str) -> str:
    """The NAME line and the first ~60 words of DESCRIPTION of one gzipped roff page ('' if none)."""
    try:
        with gzip.open(path, "rt", errors="replace") as fh:
            roff = fh.read()
    except (OSError, EOFError):
        return ""
    if roff.startswith(".so "):  # a link to another page
        return ""
    out, section, words = [], None, 0
    for line in roff.splitlines():
        if line.startswith(".SH"):
            head = line[3:].strip().strip('"').upper()
            section = "name" if head.startswith("NAME") else "desc" if head.startswith("DESCRIPTION") else None
            continue
        if section is None or line.startswith((".\\\"", "'\\\"", ".")):
            continue
        text = _plain(line)
        if text:
            out.append(text)
            if section == "desc":
                words += len(text.split())
                if words > 60:
                    section = None
    return " ".join(out)[:1000]


def build() -> tuple[Split, Split]:
    owner = _owners()
    by_section: dict[str, list[tuple[str, str, str]]] = collections.defaultdict(list)
    for number, label in SECTIONS.items():
        for path in sorted(glob.glob(f"/usr/share/man/man{number}/*.gz")):
            package = owner.get(path)
            text = page_text(path) if package else ""
            if len(text.split()) >= 5:
                by_section[label].append((text, label, str(package)))
    rng = random.Random(SEED)
    rows = []
    for label in SECTIONS.values():
        pages = by_section[label]
        rng.shuffle(pages)
        per_package: collections.Counter[str] = collections.Counter()
        for page in pages:
            if per_package[page[2]] < PER_PACKAGE:
                rows.append(page)
                per_package[page[2]] += 1
            if sum(per_package.values()) >= PER_SECTION:
                break
    packages = sorted({r[2] for r in rows})
    rng.shuffle(packages)
    held_out = set(packages[: int(len(packages) * TEST_PACKAGES)])
    train = [r for r in rows if r[2] not in held_out]
    test = [r for r in rows if r[2] in held_out]
    return (Split([r[0] for r in train], [r[1] for r in train], [r[2] for r in train]),
            Split([r[0] for r in test], [r[1] for r in test], [r[2] for r in test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, help="also write the set here (text, label, group, split)")
    args = parser.parse_args()
    from transferkit import TransferClassifier
    from transferkit.backbones.registry import DEFAULT_BACKBONES

    train, test = build()
    if not train.items or not test.items:
        raise SystemExit("too few man pages installed here to build the set")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label", "group", "split"])
            for split, name in ((train, "train"), (test, "test")):
                writer.writerows([t, y, g, name] for t, y, g in zip(split.items, split.labels, split.groups,
                                                                     strict=True))
    counts = collections.Counter((y, "test" if i >= len(train.labels) else "train")
                                 for i, y in enumerate(train.labels + test.labels))
    print(f"man pages: {len(train.items)} train ({len(set(train.groups))} packages), {len(test.items)} test "
          f"({len(set(test.groups))} other packages), {len(SECTIONS)} sections")
    print("  " + "; ".join(f"{label}: {counts[(label, 'train')]} / {counts[(label, 'test')]}"
                           for label in SECTIONS.values()))
    truth = np.array(test.labels)
    val = Split(train.items[::5], train.labels[::5], train.groups[::5])  # the peers' val column (unused here)
    rows: list[tuple[str, float, float]] = []
    for name, peer in (("TF-IDF + LR (peer, from scratch)", tfidf_logreg), ("MiniLM + LR (peer)", minilm_logreg)):
        start = time.perf_counter()
        result = peer(train, val, test)
        rows.append((name, float(np.mean(np.array(result.test_predictions) == truth)), time.perf_counter() - start))
    default = DEFAULT_BACKBONES["text"]
    for backbone in dict.fromkeys([default, *default.split("+")]):
        start = time.perf_counter()
        clf = TransferClassifier(backbone=backbone, progress=False, cache_dir=False).fit(train.items, train.labels)
        what = "transferkit default probe" if backbone == default else "transferkit probe"
        rows.append((f"{what}: {backbone}", float(clf.score(test.items, test.labels)), time.perf_counter() - start))
    print(f"{'':50s} test accuracy   seconds")
    for name, accuracy, seconds in rows:
        print(f"{name:50s} {100 * accuracy:12.1f}%   {seconds:7.1f}")


if __name__ == "__main__":
    main()
