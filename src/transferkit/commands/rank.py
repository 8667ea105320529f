"""`transferkit rank`: score how well each backbone's features transfer to the data, and say which to use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from transferkit.commands._console import console
from transferkit.commands._flags import (
    AsJson,
    BatchSize,
    CacheDir,
    LabelColumn,
    NoCache,
    PathColumn,
    Precision,
    Seed,
    cache_arg,
)
from transferkit.params import (
    AS_JSON,
    BATCH_SIZE,
    CACHE_DIR,
    LABEL_COLUMN,
    NO_CACHE,
    PATH_COLUMN,
    PRECISION,
    SEED,
    SUBSAMPLE,
)

if TYPE_CHECKING:
    import pandas as pd


def register(app: typer.Typer) -> None:
    app.command(name="rank")(rank)


def rank(
    data: Annotated[Path, typer.Argument(help="Labelled data in the same layout as for fit.")],
    backbones: Annotated[str | None, typer.Option(help="Comma-separated candidates, NAME or NAME@WEIGHTS "
                                                       "(e.g. efficientnet_lite0@random). Default: every "
                                                       "available backbone of the data's modality.")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated: logme, sfda, hscore, gbc, leep, nce, knn "
                                                     "(default logme,sfda,leep,nce; kNN is always shown).")] = None,
    select: Annotated[str, typer.Option(help="The metric that picks.")] = "logme",
    subsample: Annotated[int, typer.Option(help=SUBSAMPLE.help)] = SUBSAMPLE.default,
    layers: Annotated[bool, typer.Option("--layers", help="Rank the layers (stages) of each backbone "
                                                          "instead: which layer transfers best.")] = False,
    seed: Seed = SEED.default,
    batch_size: BatchSize = BATCH_SIZE.default,
    precision: Precision = PRECISION.default,
    path_column: PathColumn = PATH_COLUMN.default,
    label_column: LabelColumn = LABEL_COLUMN.default,
    modality: Annotated[str | None, typer.Option(help="image, text or audio (default: from the column flags, "
                                                      "else from DATA).")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="Column of texts.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", help="Column of image paths.")] = None,
    audio_column: Annotated[str | None, typer.Option("--audio-column", help="Column of audio paths.")] = None,
    cache_dir: CacheDir = CACHE_DIR.default,
    no_cache: NoCache = NO_CACHE.default,
    as_json: AsJson = AS_JSON.default,
) -> None:
    """Score how well each backbone's features transfer to DATA, and say which to use and why."""
    run_rank(data, backbones=backbones, metrics=metrics, select=select, subsample=subsample, layers=layers,
             seed=seed, batch_size=batch_size, precision=precision, cache_dir=cache_arg(cache_dir, no_cache),
             path_column=path_column, label_column=label_column, modality=modality, text_column=text_column,
             image_column=image_column, audio_column=audio_column, as_json=as_json)


def run_rank(data: Path, *, backbones: str | None = None, metrics: str | None = None, select: str = "logme",
             subsample: int = SUBSAMPLE.default, layers: bool = False, seed: int = SEED.default,
             batch_size: int = BATCH_SIZE.default, precision: str = PRECISION.default,
             cache_dir: str | Path | bool | None = CACHE_DIR.default,
             path_column: str = PATH_COLUMN.default, label_column: str = LABEL_COLUMN.default,
             modality: str | None = None, text_column: str | None = None, image_column: str | None = None,
             audio_column: str | None = None, as_json: bool = AS_JSON.default, out: Console = console) -> pd.DataFrame:
    """The modality is resolved exactly as `fit` resolves it (column flags, then --modality, then the data),
    so ranking then fitting reads the same inputs and reuses the same cached features."""
    from transferkit.data import load_labelled
    from transferkit.errors import ConfigError
    from transferkit.options import FitOptions, resolve
    from transferkit.ranking.rank_backbones import rank as rank_candidates
    from transferkit.ranking.rank_backbones import ranking_options

    values = {"data": data, "path_column": path_column, "label_column": label_column, "modality": modality,
              "text_column": text_column, "image_column": image_column, "audio_column": audio_column}
    resolved = resolve(FitOptions.from_values({k: v for k, v in values.items() if v is not None}))
    if resolved.modality == "table":
        raise ConfigError("rank scores one input column at a time: give one of --text-column, --image-column "
                          "or --audio-column")
    dataset, _ = load_labelled(data, modality=str(resolved.modality), path_column=resolved.path_column,
                               label_column=label_column)
    table = rank_candidates(dataset, backbones=backbones, metrics=metrics, select=select,
                            subsample=subsample if subsample and subsample > 0 else None, layers=layers, seed=seed,
                            cache=cache_dir, options=ranking_options(batch_size, precision, progress=not as_json))
    if as_json:
        print(json.dumps(table.to_dict(), indent=2, default=str))
    else:
        out.print(table)
    return table
