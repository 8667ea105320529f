"""`transferkit demo`: what transfer brings, on real, shifted data — and its counter-example.

`transferkit demo` (what `make demo` runs) fetches Debian's card decks (`kdegames-card-data-kf5`,
`transferkit.data.cards`): the suit of a playing card, labelled on seven deck designs and asked on
three themed decks drawn by other artists. It then

1. runs the data-efficiency curve (`transferkit curve`): a linear probe on pretrained
   EfficientNet-Lite0 features (transfer) against the same probe on HOG features (from scratch),
   at 1 … all labelled cards per suit, scored on the held-out half of the shifted decks;
2. fits the probe on all labelled cards, and the same fit with `--adapt-to` the shifted decks'
   other half, inputs without labels (domain adaptation), and prints both accuracies in one line;
3. writes the model's HTML report and predicts a few held-out cards, with the paths to open.

Where the decks cannot be had (no apt-get, no network, no resvg) it says so and runs the digits.

`transferkit demo digits` is the counter-example: scikit-learn's 1797 8x8 handwritten digits
(shipped inside scikit-learn), where HOG — close to ideal for clean, centred strokes — beats the
pretrained features at every shot count.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console

from transferkit.commands._console import console as stdout
from transferkit.commands._flags import Engine, Precision, Seed
from transferkit.jsontypes import JSONObject
from transferkit.options import OptionValues
from transferkit.params import CACHE_DIR, ENGINE, PRECISION, SEED, WEIGHTS

if TYPE_CHECKING:
    import pandas as pd

    from transferkit.data.cards import CardSet
    from transferkit.data.dataset import LabelledData

DATASETS = ("cards", "digits")


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)


def demo(
    dataset: Annotated[str, typer.Argument(help="cards (Debian's card decks: transfer and adaptation on shifted "
                                                "designs) or digits (the counter-example).")] = "cards",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The demo's folder (default runs/cards-demo or "
                                                                 "runs/digits-demo).")] = None,
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Image backbone (see `transferkit models`).")] = (
        "efficientnet_lite0"),
    shots: Annotated[str | None, typer.Option(help="Labelled images per class at each point (default cards "
                                                   "1,2,5,10,20,all; digits 1,2,5,10,20,50,all).")] = None,
    seeds: Annotated[int, typer.Option(help="Subsets drawn per shot count.")] = 3,
    finetune: Annotated[bool, typer.Option("--finetune", help="Also fine-tune Lite0 (LP-FT) at the smaller shot "
                                                              "counts while --budget lasts (minutes more).")] = False,
    budget: Annotated[float | None, typer.Option(help="--finetune: minutes for the fine-tuned points.")] = None,
    seed: Seed = SEED.default,
    precision: Precision = PRECISION.default,
    engine: Engine = ENGINE.default,
) -> None:
    """What transfer brings: the curve, adaptation to a shifted domain, a report (cards); or the digits."""
    from transferkit.errors import ConfigError

    if dataset not in DATASETS:
        raise ConfigError(f"demo {dataset!r}: choose cards (the default) or digits")
    if dataset == "digits":
        run_demo(out=out or Path("runs/digits-demo"), backbone=backbone, shots=shots or DIGIT_SHOTS, seeds=seeds,
                 finetune=finetune, budget=budget, seed=seed, precision=precision, engine=engine, console=stdout)
    else:
        run_cards_demo(out=out or Path("runs/cards-demo"), backbone=backbone, shots=shots or CARD_SHOTS, seeds=seeds,
                       finetune=finetune, budget=budget, seed=seed, precision=precision, engine=engine,
                       console=stdout)


DIGIT_SHOTS = "1,2,5,10,20,50,all"
CARD_SHOTS = "1,2,5,10,20,all"

#: what `write_digits` writes: root/<digit>/<index>.png, and its marker
_DIGIT_FILE = re.compile(r"\d{4}\.png")
_MARKER = ".complete"


def write_digits(root: Path) -> Path:
    """The 1797 8x8 digits of `sklearn.datasets.load_digits` as PNGs in root/<digit>/ (idempotent).

    A folder that holds anything else (a user's files) is refused, and nothing is written into it.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from transferkit.errors import BundleError

    marker = root / _MARKER
    if marker.exists():
        return root
    if root.is_dir():
        for entry in sorted(root.iterdir()):
            ours = entry.is_dir() and entry.name.isdigit() and all(
                _DIGIT_FILE.fullmatch(f.name) and f.is_file() for f in entry.iterdir())
            if not ours:
                raise BundleError(f"'{root}' holds '{entry.name}', which the demo did not write; refusing to write "
                                  "the digits into it. Choose another --out")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (255 - image * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # dark ink on white paper
        Image.fromarray(pixels, mode="L").save(folder / f"{i:04d}.png")
    marker.write_text("ok\n")
    return root


def few_per_class(data: LabelledData, n: int, seed: int) -> list[int]:
    """Indices of `n` examples per class, drawn with `seed` (the low-data regime transfer is for)."""
    rng = np.random.default_rng(seed)
    labels = np.array(data.labels)
    return sorted(int(i) for c in sorted(set(data.labels))
                  for i in rng.permutation(np.flatnonzero(labels == c))[:n])


def run_demo(*, out: Path, backbone: str, shots: str = DIGIT_SHOTS, seeds: int = 3, finetune: bool = False,
             budget: float | None = None, seed: int = SEED.default, precision: str = PRECISION.default,
             console: Console = stdout, cache_dir: str | Path | bool | None = CACHE_DIR.default,
             weights: str | None = WEIGHTS.default, engine: str = ENGINE.default) -> pd.DataFrame:
    """Write the digits, run the curve into OUT/curve (the demo's own folder: replaced each run). `engine`:
    how the backbone's features are extracted (as `fit --engine`)."""
    from transferkit.commands.curve import run_curve

    images = write_digits(out / "images")
    console.print("[bold]transferkit demo[/]: scikit-learn's 1797 handwritten digits (8x8 pixels, shipped inside "
                  f"scikit-learn), written as images to {images}.", highlight=False)
    console.print(f"transfer = a linear head on frozen, pretrained {backbone} features; from scratch = the same head "
                  "on HOG features (histograms of oriented gradients, nothing pretrained). Both see the same "
                  "labelled images at every point.", highlight=False)
    values = {"data": images, "out": out / "curve", "backbone": backbone, "weights": weights, "precision": precision,
              "engine": engine, "seed": seed}
    frame = run_curve(values, shots=shots, seeds=seeds, test=0.2, scratch=None, finetune=finetune, budget=budget,
                      epochs=10, cache=cache_dir, overwrite=True, as_json=False, out=console,
                      title="scikit-learn digits (8x8): test accuracy against labels per class")
    console.print("The same on your own data: transferkit curve DATA --out runs/mine-curve (--finetune to fine-tune "
                  "too; --text-column for a table of texts).", highlight=False)
    return frame



# --------------------------------------------------------------------------------------------
# The cards demo
# --------------------------------------------------------------------------------------------


def adaptation_available() -> bool:
    """Whether this transferkit's `fit` has `--adapt-to` (domain adaptation to unlabelled inputs)."""
    from transferkit.options import FitOptions

    return "adapt_to" in FitOptions.__dataclass_fields__


def run_cards_demo(*, out: Path, backbone: str, shots: str = CARD_SHOTS, seeds: int = 3, finetune: bool = False,
                   budget: float | None = None, seed: int = SEED.default, precision: str = PRECISION.default,
                   console: Console = stdout, cache_dir: str | Path | bool | None = CACHE_DIR.default,
                   weights: str | None = WEIGHTS.default, source: Path | None = None,
                   labelled: tuple[str, ...] | None = None, shifted: tuple[str, ...] | None = None,
                   sample: int | None = None, engine: str = ENGINE.default) -> JSONObject:
    """The cards demo into OUT (cards/, curve/, model/, model-adapted/); see the module docstring.

    `source`: an unpacked card-deck package (default: fetched with apt-get into OUT/source);
    `labelled` / `shifted`: the decks on each side (default `transferkit.data.cards`'s); `sample`:
    that many cards per suit of each deck (and side), for a quick check. Returns the
    curve frame and the accuracies measured.
    """
    from transferkit.commands.curve import run_curve
    from transferkit.data import cards
    from transferkit.errors import DataError
    from transferkit.selection.strategy import duration

    started = time.perf_counter()
    console.print("[bold]transferkit demo[/]: which suit is this playing card? Labelled on some deck designs, asked "
                  "on decks drawn by other artists.", highlight=False)
    try:
        card_set = _card_data(out, console, source=source, labelled=labelled or cards.LABELLED_DECKS,
                              shifted=shifted or cards.SHIFTED_DECKS, sample=sample)
    except DataError as exc:
        console.print(f"[yellow]The card decks cannot be had here: {exc}[/]", highlight=False)
        console.print("[yellow]Running the digits demo instead (`transferkit demo digits`).[/]", highlight=False)
        frame = run_demo(out=out / "digits", backbone=backbone, seeds=seeds, finetune=finetune, budget=budget,
                         seed=seed, precision=precision, console=console, cache_dir=cache_dir, weights=weights,
                         engine=engine)
        return {"fallback": "digits", "curve": frame}
    console.print(f"transfer = a linear head on frozen, pretrained {backbone} features; from scratch = the same head "
                  "on HOG features (nothing pretrained). Both see the same labelled cards at every point and are "
                  "scored on the same held-out cards of the decks no label came from.", highlight=False)

    console.rule("[bold]1/3 the data-efficiency curve", style="dim")
    values = {"data": card_set.labelled, "out": out / "curve", "backbone": backbone, "weights": weights,
              "precision": precision, "engine": engine, "seed": seed}
    frame = run_curve(values, shots=shots, seeds=seeds, test=0.2, scratch=None, finetune=finetune, budget=budget,
                      epochs=10, cache=cache_dir, overwrite=True, as_json=False, out=console,
                      title="playing cards, suit: accuracy on unseen deck designs against labels per suit")

    console.rule("[bold]2/3 the same fit, adapted to the unseen decks", style="dim")
    # --augment 0: the curve's probe, on the features it extracted (augmented views would double the time);
    # one report, of the model the demo ends with (the adapted one when fit has --adapt-to)
    adapt = adaptation_available()
    common = {"backbone": backbone, "weights": weights, "precision": precision, "engine": engine, "seed": seed,
              "overwrite": True,
              "augment": 0, **({"cache_dir": cache_dir} if cache_dir is not None else {})}
    plain = _fit(card_set.labelled, out / "model", {**common, "report": not adapt}, console,
                 "the probe on every labelled card")
    result: JSONObject = {"curve": frame, "plain": plain["accuracy"], "adapted": None}
    final = plain
    shifted_decks = sorted({r["deck"] for r in card_set.rows if r["split"] == "test"})
    n_unlabelled = sum(1 for r in card_set.rows if r["split"] == "unlabelled")
    if adapt:
        final = _fit(card_set.labelled, out / "model-adapted",
                     {**common, "report": True, "adapt_to": card_set.unlabelled}, console,
                     f"the same, --adapt-to {card_set.unlabelled} ({n_unlabelled} cards, no labels)")
        result["adapted"] = final["accuracy"]
        gain = 100 * (final["accuracy"] - plain["accuracy"])
        console.print(f"[bold]adaptation: {_pct(plain['accuracy'])} plain → {_pct(final['accuracy'])} adapted to "
                      f"the unseen decks' unlabelled cards ({gain:+.1f} pts)[/] on {plain['n_test']} held-out cards "
                      f"of {', '.join(shifted_decks)}.", highlight=False)
    else:
        console.print(f"[yellow]unfinished:[/] the adapted fit needs `transferkit fit --adapt-to` (domain "
                      f"adaptation), which this transferkit does not have yet; plain accuracy on the unseen decks: "
                      f"{_pct(plain['accuracy'])} ({plain['n_test']} held-out cards of {', '.join(shifted_decks)}).",
                      highlight=False)
    result["model"], result["report"] = final["out"], final.get("report")

    console.rule("[bold]3/3 the report and a few predictions", style="dim")
    result["predictions"] = _predict_some(Path(final["out"]), card_set, console, cache_dir=cache_dir)
    console.print(f"[green]open[/] {final.get('report')}  (the model's report: errors, confusion, embeddings)\n"
                  f"[green]open[/] {out / 'curve' / 'curve.png'}  (the curve)\n"
                  f"cards: {card_set.root}  (cards.csv: the labelled decks and the held-out cards; unlabelled/: the "
                  "unseen decks' cards without labels)", highlight=False)
    console.print(f"demo done in {duration((time.perf_counter() - started) / 60)}. The same on your own data: "
                  "transferkit curve DATA; transferkit fit DATA --report. The counter-example: transferkit demo "
                  "digits.", highlight=False)
    return result


def _card_data(out: Path, console: Console, *, source: Path | None, labelled: tuple[str, ...],
               shifted: tuple[str, ...], sample: int | None) -> CardSet:
    """The card set under OUT/cards, fetched and rendered when not already built, with progress."""
    from transferkit.data import cards

    if source is None:
        name, version = cards.PACKAGE
        with console.status(f"fetching Debian's {name} ({version}) with apt-get download…"):
            source = cards.fetch_package(out / "source")
    with console.status("rendering the decks…") as status:
        def on_deck(deck: str, done: int, total: int) -> None:
            status.update(f"rendering the decks with resvg: {done}/{total}{' — ' + deck if deck else ''}")

        card_set = cards.build_cards(out / "cards", source, labelled=labelled, shifted=shifted, on_deck=on_deck,
                                      sample=sample)
    rows = card_set.rows
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "test", "unlabelled")}
    decks = {s: sorted({r["deck"] for r in rows if r["split"] == s}) for s in ("train", "test")}
    console.print(f"{len(rows)} cards of {len(decks['train']) + len(decks['test'])} decks from Debian's "
                  f"{cards.PACKAGE[0]} (GPL-2+ and other free licences: {source / cards.LICENCE_FILE}), "
                  f"{cards.IMAGE_SIZE} px, in {card_set.root}", highlight=False)
    console.print(f"  labelled: {counts['train']} cards of {', '.join(decks['train'])}", highlight=False)
    console.print(f"  unseen decks: {', '.join(decks['test'])} — {counts['test']} held out with labels (to score), "
                  f"{counts['unlabelled']} without labels (for adaptation)", highlight=False)
    for note in card_set.notes:
        console.print(f"  [dim]{note}[/]", highlight=False)
    return card_set


def _fit(data: Path, folder: Path, common: OptionValues, console: Console, what: str) -> JSONObject:
    """`transferkit fit` on DATA into FOLDER (quietly), and one line of what it scored."""
    from transferkit.commands.fit import run_fit
    from transferkit.options import FitOptions

    options = FitOptions.from_values({"data": data, "out": folder, **common})
    with console.status(f"fitting {what}…"):
        summary = run_fit(options, out=Console(quiet=True))
    console.print(f"{what}: {_pct(summary['accuracy'])} on the {summary['n_test']} held-out cards of the unseen "
                  f"decks  → {folder}", highlight=False)
    return summary


def _predict_some(model: Path, card_set: CardSet, console: Console, *, cache_dir: str | Path | bool | None,
                  per_deck: int = 2) -> list[tuple[str, str, float, str]]:
    """Predict `per_deck` held-out cards of each unseen deck (the first by name hash) and print them."""
    from transferkit.data.cards import unit_hash
    from transferkit.estimators.load import load

    held = [r for r in card_set.rows if r["split"] == "test"]
    chosen = []
    for deck in sorted({r["deck"] for r in held}):
        mine = sorted((r for r in held if r["deck"] == deck), key=lambda r: unit_hash("demo-predict", r["path"]))
        chosen += mine[:per_deck]
    clf = load(model, progress=False, **({"cache_dir": cache_dir} if cache_dir is not None else {}))
    paths = [str(card_set.root / r["path"]) for r in chosen]
    proba = clf.predict_proba(paths)
    classes = list(clf.classes_)
    results = []
    for row, path, p in zip(chosen, paths, proba, strict=True):
        best = int(np.argmax(p))
        mark = "[green]right[/]" if classes[best] == row["label"] else "[red]wrong[/]"
        console.print(f"  {path} → {classes[best]} ({p[best]:.0%}), truly {row['label']}: {mark}", highlight=False)
        results.append((path, classes[best], float(p[best]), row["label"]))
    console.print(f"  (the same from the shell: transferkit predict {model} {paths[0]})", highlight=False)
    return results


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"

