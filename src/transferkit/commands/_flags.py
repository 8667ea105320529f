"""Flags several commands share, made from the options' declarations (`transferkit.params`), as fit's
flags are made from `transferkit.options.FitOptions`; a command's default is the declaration's
(`batch_size: BatchSize = BATCH_SIZE.default`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.params import (
    AS_JSON,
    BATCH_SIZE,
    CACHE_DIR,
    ENCODING,
    LABEL_COLUMN,
    NO_CACHE,
    PATH_COLUMN,
    PRECISION,
    SEED,
    Param,
)


def _option(declaration: Param[object]) -> typer.models.OptionInfo:
    """The typer option of a declared option: its flags and help."""
    return typer.Option(*declaration.flags, help=declaration.help)


Model = Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")]
Seed = Annotated[int, _option(SEED)]
BatchSize = Annotated[int, _option(BATCH_SIZE)]
Precision = Annotated[str, _option(PRECISION)]
CacheDir = Annotated[Path | None, _option(CACHE_DIR)]
NoCache = Annotated[bool, _option(NO_CACHE)]
AsJson = Annotated[bool, _option(AS_JSON)]
PathColumn = Annotated[str, _option(PATH_COLUMN)]
TextColumn = Annotated[str | None, typer.Option(
    "--text-column", help="Text models: the column of tables to read (default: the training one).")]
Encoding = Annotated[str | None, _option(ENCODING)]
LabelColumn = Annotated[str, _option(LABEL_COLUMN)]


AdaptBatch = Annotated[bool, typer.Option(
    "--adapt-batch", help="Probes: standardise the features of the inputs given, all together, with their own "
                          "statistics before the head reads them (test-time adaptation to a new domain; at least "
                          "32 readable inputs).")]


def with_batch_adaptation(clf: object) -> None:
    """Turn on `--adapt-batch` on a loaded probe or ensemble; any other model is refused with the reason."""
    from transferkit.errors import ConfigError

    kind = getattr(clf, "kind", "")
    if kind not in ("probe", "ensemble"):
        raise ConfigError(f"--adapt-batch standardises a probe's frozen features; this is a {kind} model, whose "
                          "features are not frozen (fine-tuned) or mix columns (table)")
    for model in [clf, *getattr(clf, "members_", [])]:
        model.adapt_batch = True


def cache_arg(cache_dir: Path | None, no_cache: bool) -> Path | bool | None:
    """What estimators take as `cache_dir`: False with --no-cache, else the folder (None: the default)."""
    return False if no_cache else cache_dir
Engine = Annotated[str, typer.Option("--engine", help="auto (the fastest installed engine whose features agree "
                                                    "with PyTorch), torch, onnxruntime or openvino; predict also "
                                                    "onnx (the export `transferkit export RUN` wrote).")]
