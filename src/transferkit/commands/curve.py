"""`transferkit curve DATA`: the data-efficiency curve — what transfer brings on the user's own data.

    transferkit curve photos/ --out runs/photos-curve
    transferkit curve reviews.csv --text-column text --shots 1,5,10,all --seeds 5

Writes curve.png, curve.csv and curve.json into --out and prints the table and the two verdicts
(`transferkit.curves` does the work). The data flags are `fit`'s, resolved by the same
`FitOptions` (modality from the column flags or the data, the default backbone by modality).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from transferkit.commands._console import console, err
from transferkit.commands._flags import (
    BatchSize,
    CacheDir,
    Encoding,
    Engine,
    LabelColumn,
    NoCache,
    Precision,
    cache_arg,
)
from transferkit.params import (
    ADAPT_METHOD,
    AS_JSON,
    BATCH_SIZE,
    CACHE_DIR,
    ENCODING,
    ENGINE,
    LABEL_COLUMN,
    NO_CACHE,
    PRECISION,
    SEED,
    WEIGHTS,
)

if TYPE_CHECKING:  # pandas is imported by the command, not at --help time
    import pandas as pd
    from rich.progress import Progress, TaskID

    from transferkit.curves import CurveRow
    from transferkit.options import OptionValues


def register(app: typer.Typer) -> None:
    app.command(name="curve")(curve)


def curve(
    data: Annotated[Path, typer.Argument(help="Labelled data in the same layout as for fit.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for curve.png, curve.csv and curve.json "
                                                                 "(default runs/<data name>-curve). A model "
                                                                 "folder made by fit works too: its report then "
                                                                 "shows the curve.")] = None,
    shots: Annotated[str, typer.Option(help="Labelled examples per class at each point, comma-separated; 'all' is "
                                            "every training example.")] = "1,2,5,10,20,50,all",
    seeds: Annotated[int, typer.Option(help="Subsets drawn (and heads trained) per shot count.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the test split (the subsets use seeds 0 … --seeds − 1).")
                    ] = SEED.default,
    test: Annotated[float, typer.Option(help="Test fraction, held out from every point, when DATA has no test "
                                             "split.")] = 0.2,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="The pretrained backbone (default by "
                                                                          "modality; `transferkit models`).")] = None,
    weights: Annotated[str | None, typer.Option(help="Its weights: a local file, 'random' (a control), 'hub'.")
                       ] = WEIGHTS.default,
    scratch: Annotated[str | None, typer.Option(help="The from-scratch features (default by modality: hog, tfidf, "
                                                     "mfcc).")] = None,
    finetune: Annotated[bool, typer.Option("--finetune", help="Also fine-tune the backbone (LP-FT) at each point, "
                                                              "fewest labels first, while --budget lasts.")] = False,
    budget: Annotated[float | None, typer.Option(help="--finetune: minutes the fine-tuned points may take "
                                                      "(default 10).")] = None,
    epochs: Annotated[int, typer.Option(help="--finetune: epochs per fine-tuned point.")] = 10,
    modality: Annotated[str | None, typer.Option(help="image, text or audio (default: from the column flags, "
                                                      "else from DATA).")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="Column of texts.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", help="Column of image paths.")] = None,
    audio_column: Annotated[str | None, typer.Option("--audio-column", help="Column of audio paths.")] = None,
    path_column: Annotated[str | None, typer.Option(help="Manifest column with input paths.")] = None,
    label_column: LabelColumn = LABEL_COLUMN.default,
    group_column: Annotated[str, typer.Option(help="Column naming each example's group (the test split then "
                                                   "holds whole groups); 'folder' for DATA/<class>/<group>/…; "
                                                   "'none'.")] = "group",
    encoding: Encoding = ENCODING.default,
    batch_size: BatchSize = BATCH_SIZE.default,
    precision: Precision = PRECISION.default,
    engine: Engine = ENGINE.default,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    adapt_to: Annotated[Path | None, typer.Option("--adapt-to", help="Unlabelled inputs of where the model will "
                                                                    "be used (as for fit): also draws adapted "
                                                                    "transfer, the test features aligned to the "
                                                                    "training domain.")] = None,
    adapt_method: Annotated[str, typer.Option("--adapt-method", help="--adapt-to: auto, standardize or "
                                                                     "coral.")] = ADAPT_METHOD.default,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a curve already in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = AS_JSON.default,
) -> None:
    """Test accuracy against labels per class: transfer (a probe on a pretrained backbone) against the same
    probe on from-scratch features, on one fixed test split; curve.png, curve.csv and a verdict."""
    values = {"data": data, "out": out, "backbone": backbone, "weights": weights, "modality": modality,
              "text_column": text_column, "image_column": image_column, "audio_column": audio_column,
              "path_column": path_column, "label_column": label_column, "group_column": group_column,
              "encoding": encoding, "batch_size": batch_size, "precision": precision, "engine": engine, "seed": seed,
              "adapt_to": adapt_to, "adapt_method": adapt_method if adapt_to is not None else None}
    run_curve(values, shots=shots, seeds=seeds, test=test, scratch=scratch, finetune=finetune, budget=budget,
              epochs=epochs, cache=cache_arg(cache_dir, no_cache), overwrite=overwrite, as_json=as_json)


def run_curve(values: OptionValues, *, shots: str, seeds: int, test: float, scratch: str | None, finetune: bool,
              budget: float | None, epochs: int, cache: str | Path | bool | None, overwrite: bool, as_json: bool,
              out: Console = console, title: str | None = None) -> pd.DataFrame:
    """Resolve the data flags as `fit` does, check --out, run the curve with a progress bar, save and print."""
    from transferkit import curves as tk_curve
    from transferkit.commands.fit import load_data
    from transferkit.errors import ConfigError
    from transferkit.options import FitOptions, is_auto_backbone, resolve

    asked = tk_curve.parse_shots(shots)  # bad shots fail before anything is read
    tk_curve.parse_seeds(seeds)
    if budget is not None and not finetune:
        raise ConfigError("--budget applies to the fine-tuned points; add --finetune")
    options = resolve(FitOptions.from_values({k: v for k, v in values.items() if v is not None}))
    if options.modality == "table":
        raise ConfigError("the curve compares one input column's transfer with its from-scratch features: give one "
                          "of --text-column, --image-column or --audio-column")
    if is_auto_backbone(options):
        raise ConfigError("--backbone auto ranks backbones; the curve measures one: name it (e.g. "
                          "--backbone efficientnet_lite0), or run `transferkit rank` first")
    folder = Path(options.out) if options.out is not None else _default_out(Path(options.data))
    from transferkit.outputs import check_out_outside

    check_out_outside(folder, options.data)
    tk_curve.check_curve_folder(folder, overwrite=overwrite)
    dataset, messages = load_data(options)
    quiet = as_json
    if not quiet:
        out.print(f"{dataset.source}: {len(dataset)} {dataset.modality} inputs, {len(dataset.classes)} classes; "
                  f"shots {', '.join(map(str, asked))} × {seeds} seed(s)", highlight=False)
        for message in messages:
            out.print(f"[yellow]{message}[/]", highlight=False)
    from transferkit.commands.fit import read_adapt_target

    target = read_adapt_target(options)  # None without --adapt-to; a bad TARGET fails before any work
    tk_curve.mark_curve_folder(folder)
    methods = [*tk_curve.DEFAULT_METHODS, *([tk_curve.FINETUNED] if finetune else [])]
    grid = _GridProgress(folder, enabled=not quiet)
    try:
        frame = tk_curve.curve(dataset, shots=asked, seeds=seeds, methods=methods, test_fraction=test,
                               seed=options.seed, backbone=options.backbone_spec, weights=options.weights,
                               scratch_backbone=scratch, cache_dir=cache, batch_size=options.batch_size,
                               precision=options.precision, budget=budget, finetune_epochs=epochs,
                               on_point=grid, progress=not quiet,
                               adapt_to=target.items if target is not None else None,
                               adapt_method=options.adapt_method, engine=options.engine)
    finally:
        grid.close()
    name = Path(str(dataset.source)).name or str(dataset.source)
    written = tk_curve.save_curve(frame, folder, title=title or f"{name}: test accuracy against labels per class")
    verdicts = tk_curve.summarize(frame)
    if quiet:
        print(json.dumps({"out": str(folder), "files": {k: str(v) for k, v in written.items()},
                          "points": frame.to_dict(orient="records"), "notes": frame.attrs.get("notes", []),
                          "verdicts": [list(v.sentences) for v in verdicts],
                          "interrupted": frame.attrs.get("interrupted", False)}, indent=2, default=str))
    else:
        print_curve(frame, out)
        for verdict in verdicts:
            for sentence in verdict.sentences:
                out.print(f"[bold]{sentence}[/]", highlight=False)
        out.print(f"[green]curve[/] {written['png']}  (points: {written['csv']})", highlight=False)
    if frame.attrs.get("interrupted"):
        err.print(f"interrupted: {len(frame)} point(s) finished are in {written['csv']}")
        sys.exit(130)
    return frame


def _default_out(data: Path) -> Path:
    return Path("runs") / f"{data.stem if data.is_file() else data.resolve().name}-curve"


class _GridProgress:
    """The `on_point` callback: a rich progress bar over the whole grid, and curve.csv rewritten (atomically)
    after every point, so that a killed run keeps what it finished."""

    def __init__(self, folder: Path, *, enabled: bool) -> None:
        self.folder, self.enabled = folder, enabled
        self.rows: list[CurveRow] = []
        #: the progress bar and its task, once the first point starts
        self._bar: tuple[Progress, TaskID] | None = None

    def __call__(self, row: CurveRow | None, done: int, total: int) -> None:
        from transferkit import curves as tk_curve

        if self.enabled and self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=err, transient=False)
            bar.start()
            self._bar = (bar, bar.add_task("curve points", total=total))
        if row is not None:
            import pandas as pd

            self.rows.append(row)
            tk_curve.write_csv(pd.DataFrame(self.rows, columns=list(tk_curve.COLUMNS)),
                               self.folder / tk_curve.CURVE_CSV)
            if self._bar is not None:
                self._bar[0].update(self._bar[1], description=f"curve points ({row['method']}, {row['shots']}/class, "
                                                         f"seed {row['seed']}: {row['accuracy']:.1%})")
        if self._bar is not None:
            self._bar[0].update(self._bar[1], completed=done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar[0].stop()


def print_curve(frame: pd.DataFrame, out: Console) -> None:
    """One row per shot count: each method's mean test accuracy (and the lowest–highest seed), and the gap."""
    from rich.table import Table

    from transferkit import curves as tk_curve

    methods, shots, cells = tk_curve.accuracy_grid(frame)
    backbones = {m: str(frame.loc[frame["method"] == m, "backbone"].iloc[0]) for m in methods}
    n_classes = max(int(frame.attrs.get("n_classes", 1)), 1)
    seeds = max((int(c.seeds) for c in cells.values()), default=0)
    rich_table = Table(title=f"test accuracy ({frame.attrs.get('n_test', '?')} examples), mean of {seeds} seed(s)"
                             + (" (lowest–highest)" if seeds > 1 else ""),
                       caption="; ".join(f"{m}: {backbones[m]}" for m in methods))
    rich_table.add_column("labels per class", justify="right")
    for m in methods:
        rich_table.add_column(m, justify="right")
    gap_methods = [m for m in (tk_curve.TRANSFER, tk_curve.ADAPTED, tk_curve.FINETUNED)
                   if m in methods and tk_curve.SCRATCH in methods]
    for m in gap_methods:
        rich_table.add_column(f"{m} − from scratch", justify="right")
    for s in shots:
        first = next((cells[(m, s)] for m in methods if (m, s) in cells), None)
        label = s if s != tk_curve.ALL or first is None else f"all (≈{first.n_train / n_classes:.0f})"
        row = [label]
        for m in methods:
            c = cells.get((m, s))
            row.append("—" if c is None else f"{c.mean:.1%}" + (f" ({c.min:.1%}–{c.max:.1%})" if c.seeds > 1 else ""))
        for m in gap_methods:
            a, b = cells.get((m, s)), cells.get((tk_curve.SCRATCH, s))
            row.append("—" if a is None or b is None else f"{100 * (a.mean - b.mean):+.1f} pts")
        rich_table.add_row(*row)
    out.print(rich_table)
    features = frame.attrs.get("features", {})
    if features:
        out.print("features, once per backbone: " + "; ".join(
            f"{f['backbone']} {f['extracted']} extracted + {f['cached']} from cache in {f['seconds']:.1f}s"
            for f in features.values()), highlight=False)
    for note in frame.attrs.get("notes", []):
        out.print(f"[dim]- {note}[/]", highlight=False)
    skipped = frame.attrs.get("skipped", {})
    if skipped:
        from transferkit.commands._console import print_skipped

        print_skipped(skipped, out)
