"""`transferkit shift DATA TARGET`: how far is where the model will be used from the training data?

Before labelling anything: the backbone's features of DATA and of TARGET (unlabelled), a domain
classifier's cross-validated accuracy between them (proxy A-distance) before and after alignment,
which classes of DATA look worst, a verdict, and a 2-D map (`shift.png`) — see `transferkit.adapt.shift_diagnostic`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from transferkit.commands._console import console
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
from transferkit.outputs import write_atomic
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

#: the files `shift` writes into --out; shift.json carries this kind, so a rerun knows they are its own
FILES = ("shift.json", "shift.png")
KIND = "transferkit-shift"


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
    modality: Annotated[str | None, typer.Option(help="image, text or audio (default: from DATA).")] = None,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    as_json: AsJson = AS_JSON.default,
) -> None:
    """How far TARGET (unlabelled inputs from where the model will be used) is from DATA, and for which classes."""
    run_shift(data, target, backbone=backbone, adapt_method=adapt_method, out_dir=out, max_inputs=max_inputs,
              seed=seed, batch_size=batch_size, precision=precision, engine=engine, path_column=path_column,
              label_column=label_column, modality=modality, cache_dir=cache_arg(cache_dir, no_cache),
              as_json=as_json)


def run_shift(data: Path, target: Path, *, backbone: str | None = None, adapt_method: str = ADAPT_METHOD.default,
              out_dir: Path = Path("shift"), max_inputs: int = 2000, seed: int = SEED.default,
              batch_size: int = BATCH_SIZE.default, precision: str = PRECISION.default, engine: str = ENGINE.default,
              path_column: str = PATH_COLUMN.default, label_column: str = LABEL_COLUMN.default,
              modality: str | None = None, cache_dir: str | Path | bool | None = CACHE_DIR.default,
              as_json: bool = AS_JSON.default,
              out: Console = console) -> JSONObject:
    """The command's work; returns what `--json` prints. Nothing is written before every input was read."""
    import numpy as np

    from transferkit.adapt.align import METHODS
    from transferkit.adapt.shift_diagnostic import diagnose_with_alignment, shift_map
    from transferkit.adapt.target import read_target
    from transferkit.backbones import build_backbone
    from transferkit.cache import resolve_cache
    from transferkit.data import load_labelled
    from transferkit.errors import ConfigError
    from transferkit.features import ExtractOptions, extract_features
    from transferkit.options import FitOptions, resolve

    if adapt_method not in METHODS or adapt_method in ("self-training", "mcc"):
        raise ConfigError(f"--adapt-method for shift: one of auto, standardize, coral, none; got {adapt_method!r}")
    if max_inputs < 10:
        raise ConfigError(f"--max-inputs must be at least 10; got {max_inputs}")
    _check_out(out_dir)
    values = {"data": data, "path_column": path_column, "label_column": label_column, "modality": modality,
              "backbone": backbone}
    resolved = resolve(FitOptions.from_values({k: v for k, v in values.items() if v is not None}))
    kind = str(resolved.modality)
    if kind == "table":
        raise ConfigError("shift compares one input column's features: give --modality image, text or audio")
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


def print_shift(diagnostic: JSONObject, out: Console, *, heading: str | None = None) -> None:
    """The diagnostic as rich tables and its verdict (also what `fit --adapt-to` prints)."""
    from rich.table import Table

    from transferkit.adapt.shift_diagnostic import ShiftDiagnostic

    diag = ShiftDiagnostic.from_dict(diagnostic)
    after = diag.domain_accuracy_aligned is not None
    table = Table(title=heading or "how far is the target?", title_justify="left")
    table.add_column("")
    table.add_column("before alignment", justify="right")
    if after:
        table.add_column(f"after {diag.alignment or 'alignment'}", justify="right")
    table.add_row("inputs (DATA / TARGET)", f"{diag.n_source} / {diag.n_target}", *([""] if after else []))
    table.add_row("domain classifier accuracy", f"{diag.domain_accuracy:.1%}",
                  *([f"{diag.domain_accuracy_aligned:.1%}"] if after else []))
    table.add_row("proxy A-distance (0–2)", f"{diag.proxy_a_distance:.2f}",
                  *([f"{diag.proxy_a_distance_aligned:.2f}"] if after else []))
    out.print(table)
    if diag.per_class:
        per = Table(title=f"per class of DATA (domain accuracy, {diag.folds}-fold held out; ½ = alike)",
                    title_justify="left")
        for name in ("class", "DATA", "TARGET nearest", "domain acc."):
            per.add_column(name, justify="left" if name == "class" else "right")
        if after:
            per.add_column("after", justify="right")
        per.add_column("target distance ×", justify="right")
        rows = sorted(diag.per_class, key=lambda c: -(c.domain_accuracy or 0.0))
        for c in rows[:25]:
            per.add_row(c.label, str(c.n_source), str(c.n_target), _pct(c.domain_accuracy),
                        *([_pct(c.domain_accuracy_aligned)] if after else []),
                        f"{c.distance_ratio:.2f}" if c.distance_ratio is not None else "—")
        if len(rows) > 25:
            per.caption = f"{len(rows) - 25} more classes in shift.json"
        out.print(per)
    out.print(f"[bold]verdict:[/] {diag.verdict()}", highlight=False)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _check_out(folder: Path) -> None:
    """--out may hold an earlier `shift`'s files (replaced); a file of ours' name that is not ours is refused."""
    from transferkit.errors import ConfigError

    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: a file is there, not a folder")
    present = [name for name in FILES if (folder / name).exists()]
    if not present:
        return
    try:
        ours = json.loads((folder / "shift.json").read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise ConfigError(f"--out {folder}: it holds {', '.join(present)} that transferkit shift did not write; "
                          "choose another --out (nothing was written)")

