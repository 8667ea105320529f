"""`transferkit shift DATA TARGET`: how far is where the model will be used from the training data?

Before labelling anything: the backbone's features of DATA and of TARGET (unlabelled), a domain
classifier's cross-validated accuracy between them (proxy A-distance) before and after alignment,
which classes of DATA look worst, a verdict, and a 2-D map (`shift.png`) — see `transferkit.adapt.shift_diagnostic`.

A table (DATA and TARGET with the columns named as for `fit`: `--image-column`, `--text-column`,
`--numeric-columns`, …): every column on its own, encoded as a table model encodes it — an image, text or
audio column by its backbone's features (the diagnostic above, the shift test of `fit --adapt-to`'s `auto`,
and a map per column, `shift-<i>.png`), a number standardised by DATA's mean and spread (two-sample
Kolmogorov–Smirnov), a category one-hot over DATA's categories (chi-square on the counts, an unseen
category and a missing cell counted as categories of their own) — and which columns moved most.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from transferkit.commands._console import console, pct_or_dash, print_shift
from transferkit.commands._flags import (
    AsJson,
    BatchSize,
    CacheDir,
    Engine,
    LabelColumn,
    NoCache,
    PathColumn,
    Precision,
    Seed,
    cache_arg,
)
from transferkit.jsontypes import JSONObject
from transferkit.options import FitOptions
from transferkit.outputs import write_atomic

if typing.TYPE_CHECKING:
    import numpy as np

    from transferkit.estimators.tabular import ColumnBlocks
from transferkit.params import (
    ADAPT_METHOD,
    AS_JSON,
    BATCH_SIZE,
    CACHE_DIR,
    ENGINE,
    LABEL_COLUMN,
    NO_CACHE,
    PATH_COLUMN,
    PRECISION,
    SEED,
)

#: the files `shift` writes into --out (a table: `shift-<i>.png` too, one per embedded column); shift.json
#: carries this kind, so a rerun knows they are its own
FILES = ("shift.json", "shift.png")
KIND = "transferkit-shift"


def _fit_flag(name: str) -> object:
    """`fit`'s flag of that option, declared once in `FitOptions` (the table's column flags)."""
    option = FitOptions.declared()[name]
    return Annotated[str | None, typer.Option(*option.flags, help=option.help)]


ImageColumn = _fit_flag("image_column")
TextColumnFlag = _fit_flag("text_column")
AudioColumn = _fit_flag("audio_column")
NumericColumns = _fit_flag("numeric_columns")
CategoricalColumns = _fit_flag("categorical_columns")


def register(app: typer.Typer) -> None:
    app.command(name="shift")(shift)


def shift(
    data: Annotated[Path, typer.Argument(help="Labelled training data, in the same layout as for fit.")],
    target: Annotated[Path, typer.Argument(help="Unlabelled inputs from where the model will be used (a folder in "
                                                "any layout, a table with the input column, or texts one per "
                                                "line); labels in it are ignored.")],
    backbone: Annotated[str | None, typer.Option(help="The backbone whose features are compared (default: fit's "
                                                      "default for the data's modality).")] = None,
    adapt_method: Annotated[str, typer.Option(
        "--adapt-method", help="The alignment measured after: auto (standardisation shrunk toward no shift by "
        "James-Stein), standardize, coral or none."
    )] = ADAPT_METHOD.default,
    out: Annotated[Path, typer.Option(help="Folder for shift.png (the 2-D map) and shift.json.")] = Path("shift"),
    max_inputs: Annotated[int, typer.Option("--max-inputs", help="Compare at most N inputs of each domain "
                                                                 "(a seeded subsample).")] = 2000,
    seed: Seed = SEED.default,
    batch_size: BatchSize = BATCH_SIZE.default,
    precision: Precision = PRECISION.default,
    engine: Engine = ENGINE.default,
    path_column: PathColumn = PATH_COLUMN.default,
    label_column: LabelColumn = LABEL_COLUMN.default,
    modality: Annotated[str | None, typer.Option(help="image, text, audio or table (default: from the column "
                                                      "flags, else from DATA).")] = None,
    image_column: ImageColumn = None,  # type: ignore[valid-type]
    text_column: TextColumnFlag = None,  # type: ignore[valid-type]
    audio_column: AudioColumn = None,  # type: ignore[valid-type]
    numeric_columns: NumericColumns = None,  # type: ignore[valid-type]
    categorical_columns: CategoricalColumns = None,  # type: ignore[valid-type]
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    as_json: AsJson = AS_JSON.default,
) -> None:
    """How far TARGET (unlabelled inputs from where the model will be used) is from DATA, and for which classes
    (a table: for which columns)."""
    columns = {"image_column": image_column, "text_column": text_column, "audio_column": audio_column,
               "numeric_columns": numeric_columns, "categorical_columns": categorical_columns}
    run_shift(data, target, backbone=backbone, adapt_method=adapt_method, out_dir=out, max_inputs=max_inputs,
              seed=seed, batch_size=batch_size, precision=precision, engine=engine, path_column=path_column,
              label_column=label_column, modality=modality, cache_dir=cache_arg(cache_dir, no_cache),
              as_json=as_json, columns={k: v for k, v in columns.items() if v is not None})


def run_shift(data: Path, target: Path, *, backbone: str | None = None, adapt_method: str = ADAPT_METHOD.default,
              out_dir: Path = Path("shift"), max_inputs: int = 2000, seed: int = SEED.default,
              batch_size: int = BATCH_SIZE.default, precision: str = PRECISION.default, engine: str = ENGINE.default,
              path_column: str = PATH_COLUMN.default, label_column: str = LABEL_COLUMN.default,
              modality: str | None = None, cache_dir: str | Path | bool | None = CACHE_DIR.default,
              as_json: bool = AS_JSON.default, columns: dict[str, str] | None = None,
              out: Console = console) -> JSONObject:
    """The command's work; returns what `--json` prints. Nothing is written before every input was read.
    `columns`: a table's column flags by option name (`text_column`, `numeric_columns`, …)."""
    import numpy as np

    from transferkit.adapt.align import METHODS
    from transferkit.adapt.shift_diagnostic import diagnose_with_alignment, shift_map
    from transferkit.adapt.target import read_target
    from transferkit.backbones import build_backbone
    from transferkit.cache import resolve_cache
    from transferkit.data import load_labelled
    from transferkit.errors import ConfigError
    from transferkit.features import ExtractOptions, extract_features
    from transferkit.options import resolve

    if adapt_method not in METHODS or adapt_method in ("self-training", "mcc"):
        raise ConfigError(f"--adapt-method for shift: one of auto, standardize, coral, none; got {adapt_method!r}")
    if max_inputs < 10:
        raise ConfigError(f"--max-inputs must be at least 10; got {max_inputs}")
    _check_out(out_dir)
    values = {"data": data, "path_column": path_column, "label_column": label_column, "modality": modality,
              "backbone": backbone, **(columns or {})}
    resolved = resolve(FitOptions.from_values({k: v for k, v in values.items() if v is not None}))
    kind = str(resolved.modality)
    if kind == "table":
        return _table_shift(resolved, target, adapt_method=adapt_method, out_dir=out_dir, max_inputs=max_inputs,
                            seed=seed, runtime={"batch_size": batch_size, "precision": precision, "engine": engine,
                                                "cache_dir": cache_dir, "progress": not as_json},
                            as_json=as_json, out=out)
    dataset, _ = load_labelled(data, modality=kind, path_column=resolved.path_column, label_column=label_column)
    inputs = read_target(target, kind, path_column=resolved.path_column, text_column=resolved.path_column,
                         argument="TARGET")
    rng = np.random.default_rng(seed)

    def cap(n: int) -> np.ndarray:
        return np.arange(n) if n <= max_inputs else np.sort(rng.choice(n, size=max_inputs, replace=False))

    keep_s, keep_t = cap(len(dataset.items)), cap(len(inputs.items))
    if resolved.backbone_spec is None:
        raise ConfigError("shift needs a backbone; name one with --backbone")
    model = build_backbone(resolved.backbone_spec)
    options = ExtractOptions(batch_size=batch_size, precision=precision, engine=engine, progress=not as_json)
    store = resolve_cache(cache_dir)
    src = extract_features(model, [dataset.items[i] for i in keep_s], options=options, cache=store,
                           description="DATA features")
    tgt = extract_features(model, [inputs.items[i] for i in keep_t], options=options, cache=store,
                           description="TARGET features")
    labels = [dataset.labels[i] for i, ok in zip(keep_s, src.ok, strict=True) if ok]
    diagnostic, aligned = diagnose_with_alignment(src.values, tgt.values, labels, method=adapt_method, seed=seed)
    png = shift_map(src.values, tgt.values, labels, source_aligned=src.values if aligned is not None else None,
                    target_aligned=aligned, alignment=diagnostic.alignment, seed=seed,
                    title=f"{data.name} vs {target.name} ({model.name})")
    result = {"kind": KIND, "data": str(data), "target": str(target), "backbone": model.name,
              "inputs_compared": {"data": int(src.ok.sum()), "target": int(tgt.ok.sum())},
              "skipped": {"data": len(src.failed), "target": len(tgt.failed) + len(inputs.skipped)},
              **({"target_labels": f"ignored ({inputs.labels_ignored})"} if inputs.labels_ignored else {}),
              **diagnostic.to_dict(), "plot": str(out_dir / "shift.png")}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "shift.png", lambda fh: fh.write(png), binary=True)
    write_atomic(out_dir / "shift.json", lambda fh: fh.write(json.dumps(result, indent=2, default=str)))
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_shift(diagnostic.to_dict(), out, heading=f"{data} → {target} ({model.name} features)")
        out.print(f"map: {out_dir / 'shift.png'}", highlight=False)
    return result


def _table_shift(resolved: FitOptions, target: Path, *, adapt_method: str, out_dir: Path, max_inputs: int, seed: int,
                 runtime: dict[str, object], as_json: bool, out: Console) -> JSONObject:
    """`shift` of a table: each column of TARGET's rows against DATA's, encoded as a table model encodes them
    (`TabularTransferClassifier.column_blocks`), the columns that moved most first (module docstring)."""
    import dataclasses

    import numpy as np

    from transferkit.commands.fit import build_estimator, load_data, read_adapt_target
    from transferkit.estimators.tabular import TabularTransferClassifier

    estimator = build_estimator(resolved)
    assert isinstance(estimator, TabularTransferClassifier)
    estimator.set_params(**runtime)
    dataset, _ = load_data(resolved)
    inputs = read_adapt_target(dataclasses.replace(resolved, adapt_to=target), argument="TARGET")
    assert inputs is not None
    rng = np.random.default_rng(seed)

    def cap(n: int) -> np.ndarray:
        return np.arange(n) if n <= max_inputs else np.sort(rng.choice(n, size=max_inputs, replace=False))

    keep_s, keep_t = cap(len(dataset.items)), cap(len(inputs.items))
    blocks = estimator.column_blocks([dataset.items[i] for i in keep_s], [dataset.labels[i] for i in keep_s],
                                     [inputs.items[i] for i in keep_t])
    entries: dict[str, JSONObject] = {}
    plots: dict[str, bytes] = {}
    for i, block in enumerate(blocks):
        entry, png = column_shift(block, method=adapt_method, seed=seed, name=f"{resolved.data.name} vs {target.name}")
        if png is not None:
            plots[f"shift-{i}.png"] = png
            entry["plot"] = str(out_dir / f"shift-{i}.png")
        entries[block.column] = entry

    def accuracy(col: str) -> float:
        value = entries[col].get("domain_accuracy")
        return float(value) if isinstance(value, int | float) else 0.0

    ranked = sorted(entries, key=lambda c: -accuracy(c))
    moved = [c for c in ranked if entries[c].get("shift_detected")]
    most = (f"a domain classifier tells DATA's and TARGET's apart {accuracy(ranked[0]):.0%} of the time on "
            f"{ranked[0]}")
    verdict = (f"{len(moved)} of {len(entries)} columns differ (each column's own test at α = 0.05, not corrected "
               f"across columns): {', '.join(moved)}; the most: {most}" if moved else
               f"no column differs detectably (each column's own test at α = 0.05); at most, {most}")
    result: JSONObject = {
        "kind": KIND, "data": str(resolved.data), "target": str(target), "modality": "table",
        "backbones": {b.kind: b.encoder for b in blocks if b.encoder is not None},
        "inputs_compared": {"data": len(keep_s), "target": len(keep_t)},
        "skipped": {"target": len(inputs.skipped)},
        **({"target_labels": f"ignored ({inputs.labels_ignored})"} if inputs.labels_ignored else {}),
        "columns": {c: entries[c] for c in ranked}, "verdict": verdict, "plots": [str(out_dir / n) for n in plots],
    }
    earlier = _earlier_plots(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, png in plots.items():
        _write_png(out_dir / name, png)
    for stale in earlier - set(plots):  # an earlier run's maps of columns this run did not draw (its own files)
        (out_dir / stale).unlink(missing_ok=True)
    write_atomic(out_dir / "shift.json", lambda fh: fh.write(json.dumps(result, indent=2, default=str)))
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_table_shift(result, out)
    return result


def _write_png(path: Path, png: bytes) -> None:
    write_atomic(path, lambda fh: fh.write(png), binary=True)


def column_shift(block: ColumnBlocks, *, method: str, seed: int, name: str) -> tuple[JSONObject, bytes | None]:
    """One column of a table: how far TARGET's cells are from DATA's (the domain classifier's diagnostic on the
    column's block, as the model encodes it, and a two-sample test of its own kind), and an embedded column's map."""
    import numpy as np
    from scipy.stats import chi2_contingency, ks_2samp

    from transferkit.adapt.align import MIN_TARGET_INPUTS
    from transferkit.adapt.shift_diagnostic import diagnose_shift, diagnose_with_alignment, shift_map
    from transferkit.adapt.shift_test import ALPHA, detect_shift

    present_s, present_t = block.source[:, -1] == 0, block.target[:, -1] == 0
    entry: JSONObject = {"kind": block.kind, "absent": {"data": round(float(np.mean(~present_s)), 4),
                                                        "target": round(float(np.mean(~present_t)), 4)}}
    labels = np.asarray(block.labels, dtype=object)
    if block.kind in ("image", "text", "audio"):
        s, t = block.source[present_s, :-1], block.target[present_t, :-1]
        if min(len(s), len(t)) < MIN_TARGET_INPUTS:
            entry.update(why=f"{len(s)} readable cells in DATA and {len(t)} in TARGET: fewer than "
                             f"{MIN_TARGET_INPUTS} in one, not compared", shift_detected=False)
            return entry, None
        diagnostic, aligned = diagnose_with_alignment(s, t, list(labels[present_s]), method=method, seed=seed)
        test = detect_shift(s, t, seed=seed)
        entry.update(diagnostic.to_dict())
        entry.update(test="Kolmogorov–Smirnov per principal component (Rabanser et al. 2019)",
                     p_value=test.p_value, threshold=test.threshold, shift_detected=test.detected)
        png = shift_map(s, t, list(labels[present_s]), source_aligned=s if aligned is not None else None,
                        target_aligned=aligned, alignment=diagnostic.alignment, seed=seed,
                        title=f"{name}: column {block.column!r}")
        return entry, png
    entry.update(diagnose_shift(block.source, block.target, list(labels), seed=seed).to_dict())
    if block.kind == "numeric":
        s, t = block.source[present_s, 0], block.target[present_t, 0]
        if min(len(s), len(t)) < 2:
            entry.update(why="fewer than 2 numbers in one table: not tested", shift_detected=False)
            return entry, None
        ks = ks_2samp(s, t)
        entry.update(test="two-sample Kolmogorov–Smirnov", statistic=round(float(ks.statistic), 4),
                     p_value=float(ks.pvalue), threshold=ALPHA, shift_detected=bool(ks.pvalue < ALPHA),
                     target_mean_in_data_sd=round(float(t.mean()), 3),
                     target_spread_in_data_sd=round(float(t.std()), 3))
        return entry, None
    counts = np.stack([_category_counts(block.source), _category_counts(block.target)])
    names = [*(block.categories or []), "(a category DATA does not have)", "(missing)"]
    kept = counts.sum(axis=0) > 0
    shares = counts / counts.sum(axis=1, keepdims=True)
    entry["total_variation"] = round(float(0.5 * np.abs(shares[0] - shares[1]).sum()), 4)
    order = sorted(np.flatnonzero(kept), key=lambda j: -abs(float(shares[1, j] - shares[0, j])))
    entry["moved_most"] = [{"category": names[j], "data": round(float(shares[0, j]), 4),
                            "target": round(float(shares[1, j]), 4)} for j in order[:5]]
    if kept.sum() < 2:
        entry.update(why="one category in both tables: nothing to test", shift_detected=False)
        return entry, None
    chi2 = chi2_contingency(counts[:, kept])
    entry.update(test="chi-square on the category counts", statistic=round(float(chi2.statistic), 4),
                 p_value=float(chi2.pvalue), threshold=ALPHA, shift_detected=bool(chi2.pvalue < ALPHA))
    return entry, None


def _category_counts(block: np.ndarray) -> np.ndarray:
    """Per category of the vocabulary, then 'not in it', then 'missing': how many rows of a one-hot block."""
    import numpy as np

    missing = block[:, -1] == 1
    onehot = block[:, :-1]
    unseen = (~missing) & (onehot.sum(axis=1) == 0)
    return np.concatenate([onehot.sum(axis=0), [unseen.sum(), missing.sum()]]).astype(np.int64)


def print_table_shift(result: JSONObject, out: Console) -> None:
    """A table's shift: one line per column (the most moved first), then each embedded column's diagnostic."""
    from rich.table import Table

    out.print(f"{result['data']} → {result['target']}", highlight=False)
    table = Table(title="how far is each column?", title_justify="left")
    table.add_column("column", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("domain clf.", justify="right", no_wrap=True)
    table.add_column("test", no_wrap=True)
    table.add_column("shifted", justify="right", no_wrap=True)
    short = {"image": "KS×PCs", "text": "KS×PCs", "audio": "KS×PCs", "numeric": "KS", "categorical": "χ²"}
    kinds = {"numeric": "number", "categorical": "category"}
    columns = result["columns"]
    assert isinstance(columns, dict)
    for col, entry in columns.items():
        p = entry.get("p_value")
        level = f" {entry['level']}" if "level" in entry else ""
        kind = str(entry["kind"])
        table.add_row(col, kinds.get(kind, kind), pct_or_dash(entry.get("domain_accuracy")) + level,
                      f"{short[kind]} p={p:.2g}" if p is not None else "—",
                      "yes" if entry.get("shift_detected") else "no")
    table.caption = ("domain clf.: how often a domain classifier tells DATA's cells from TARGET's (50% = alike); "
                     "KS×PCs: Kolmogorov–Smirnov per principal component, Bonferroni; KS: two-sample "
                     "Kolmogorov–Smirnov; χ²: chi-square on the category counts")
    out.print(table)
    for col, entry in columns.items():
        if "why" in entry:
            out.print(f"column {col!r}: {entry['why']}", highlight=False)
    for col, entry in columns.items():
        if entry["kind"] in ("image", "text", "audio") and "domain_accuracy" in entry:
            print_shift(entry, out, heading=f"column {col!r} ({entry['kind']} features)")
            out.print(f"map: {entry['plot']}", highlight=False)
        elif entry["kind"] == "categorical" and entry.get("moved_most"):
            moved = ", ".join(f"{m['category']} {m['data']:.0%} → {m['target']:.0%}" for m in entry["moved_most"][:3])
            out.print(f"column {col!r}: total variation {entry['total_variation']:.2f}; moved most: {moved}",
                      highlight=False)
    out.print(f"[bold]verdict:[/] {result['verdict']}", highlight=False)


def _check_out(folder: Path) -> None:
    """--out may hold an earlier `shift`'s files (replaced); a file of ours' name that is not ours is refused."""
    from transferkit.errors import ConfigError

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: a file is there, not a folder")
    present = [name for name in FILES if (folder / name).exists()]
    present += sorted(p.name for p in folder.glob("shift-*.png")) if folder.is_dir() else []
    if not present:
        return
    try:
        ours = json.loads((folder / "shift.json").read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise ConfigError(f"--out {folder}: it holds {', '.join(present)} that transferkit shift did not write; "
                          "choose another --out (nothing was written)")


def _earlier_plots(folder: Path) -> set[str]:
    """The column maps an earlier table `shift` wrote into `folder`, as its shift.json lists them."""
    try:
        earlier = json.loads((folder / "shift.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(earlier, dict) or earlier.get("kind") != KIND:
        return set()
    names = {Path(str(p)).name for p in earlier.get("plots", []) if isinstance(p, str)}
    return {n for n in names if n.startswith("shift-") and n.endswith(".png")}
