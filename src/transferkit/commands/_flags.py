"""Flags several commands share (fit's own come from `transferkit.options.FitOptions`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Model = Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same data → same result).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Inputs per forward pass.")]
Precision = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU runs it natively), bf16, fp32.")]
CacheDir = Annotated[Path | None, typer.Option("--cache-dir",
                                                help="Feature cache folder (default ~/.cache/transferkit).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
PathColumn = Annotated[str, typer.Option(help="Manifest column with input paths (text: the texts).")]
TextColumn = Annotated[str | None, typer.Option(
    "--text-column", help="Text models: the column of tables to read (default: the training one).")]
Encoding = Annotated[str | None, typer.Option("--encoding", help="How a table is encoded when it is not UTF-8 "
                                                                 "(e.g. cp1252, latin-1).")]
LabelColumn = Annotated[str, typer.Option(help="Manifest column with labels.")]


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
