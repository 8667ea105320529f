"""The `transferkit` command. One thin function per command; all logic lives in the library.

Errors of the `TransferkitError` family are shown as one message without a traceback
(`--debug` shows it). Heavy imports happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    name="transferkit",
    help="Transfer learning for your own labelled data: fit, predict, evaluate, compare backbones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug


# -- shared options --------------------------------------------------------------------------
Backbone = Annotated[str, typer.Option("--backbone", "-b", help="Backbone name (see `transferkit models`); "
                                      "fit also takes 'auto' (rank the available ones, fit the best) or "
                                      "'auto:NAME,NAME@random'.")]
Weights = Annotated[
    str | None,
    typer.Option(help="Backbone weights: a local file, 'random' (control), or 'hub' (online). "
                 "Default: the backbone's own pretrained weights."),
]
Head = Annotated[str, typer.Option(help="Head: 'linear', 'mlp', 'mlp:HIDDEN', or layers like "
                                        "'dense:512:relu, dropout:0.2, dense:N'.")]
Seed = Annotated[int, typer.Option(help="Random seed (same seed, same data → same result).")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Inputs per forward pass.")]
Precision = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU runs it natively), bf16, fp32.")]
CacheDir = Annotated[Path | None, typer.Option("--cache-dir", help="Feature cache folder "
                                                                   "(default ~/.cache/transferkit).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _cache_arg(cache_dir: Path | None, no_cache: bool) -> Any:
    return False if no_cache else cache_dir


@app.command()
def fit(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Image folder (DATA/<class>/*, or DATA/{train,val,test}/<class>/*) "
                                              "or a CSV/Parquet/JSONL manifest with path,label columns.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to save the trained model "
                                                                 "(default runs/<data name>).")] = None,
    backbone: Annotated[str | None, typer.Option(
        "--backbone", "-b", help="Backbone name (see `transferkit models`). Default by modality: image "
        "efficientnet_lite0, text all-minilm-l6-v2, audio ge2e; for a table, KIND=NAME pairs "
        "(text=…,image=…,audio=…).")] = None,
    weights: Weights = None,
    head: Head = "linear",
    val: Annotated[float, typer.Option(help="Validation fraction when DATA is not already split.")] = 0.15,
    test: Annotated[float, typer.Option(help="Test fraction when DATA is not already split.")] = 0.15,
    seed: Seed = 0,
    batch_size: BatchSize = 32,
    precision: Precision = "auto",
    class_weight: Annotated[str, typer.Option(help="auto (balanced if the largest class is ≥3x the "
                                                   "smallest), balanced, none.")] = "auto",
    path_column: Annotated[str, typer.Option(help="Manifest column with input paths.")] = "path",
    label_column: Annotated[str, typer.Option(help="Manifest column with labels.")] = "label",
    modality: Annotated[str | None, typer.Option(
        help="image, text, audio or table. Default: from the column flags, else from DATA (a folder of "
             "clips is audio).")] = None,
    text_column: Annotated[str | None, typer.Option(
        "--text-column", help="Column of texts. Alone: a text classifier; with other columns: a table.")] = None,
    image_column: Annotated[str | None, typer.Option(
        "--image-column", help="Column of image paths (a table when given with other columns).")] = None,
    audio_column: Annotated[str | None, typer.Option(
        "--audio-column", help="Column of audio paths (a table when given with other columns).")] = None,
    numeric_columns: Annotated[str | None, typer.Option(
        "--numeric-columns", help="Comma-separated numeric columns (standardised, with a missing mask).")] = None,
    categorical_columns: Annotated[str | None, typer.Option(
        "--categorical-columns", help="Comma-separated categorical columns (one-hot; unseen → all zero).")] = None,
    fusion: Annotated[str, typer.Option(
        help="Tables: concat (late fusion of the column embeddings) or gated (learned per-column gates; "
             "encoders stay frozen).")] = "concat",
    long_text: Annotated[str, typer.Option(
        "--long-text", help="Texts longer than the model's window: truncate (counted, reported) or chunk "
                            "(embed overlapping chunks and average).")] = "truncate",
    strict: Annotated[bool, typer.Option(help="Fail on unreadable inputs instead of skipping them.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a trained model already at --out.")] = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    as_json: AsJson = False,
    strategy: Annotated[str, typer.Option(help="probe (frozen backbone, head on cached features), finetune "
                                               "(train backbone + head on Lightning), or auto (decide from data "
                                               "size and --budget; the rule is printed).")] = "probe",
    budget: Annotated[float | None, typer.Option(help="--strategy auto: training time budget in minutes "
                                                      "(default 30).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file setting any fit option "
                                                                 "(flags given here override it).")] = None,
    epochs: Annotated[int | None, typer.Option(help="finetune: training epochs (default 10).")] = None,
    lr: Annotated[str | None, typer.Option(help="finetune: learning rate of the head, or 'auto' "
                                                "(LR finder). Default 1e-3.")] = None,
    freeze: Annotated[str | None, typer.Option(
        help="finetune: frozen (head only), full, or gradual (head first, then unfreeze from the top). "
             "Default full, with layer-wise LR decay.")] = None,
    peft: Annotated[str | None, typer.Option(
        help="finetune: lora or bitfit (train only those parameters).")] = None,
    devices: Annotated[str | None, typer.Option(
        help="finetune: number of devices (2+ → DDP), or auto.")] = None,
    accelerator: Annotated[str | None, typer.Option(help="finetune: auto, cpu or gpu.")] = None,
    resume: Annotated[Path | None, typer.Option(help="finetune: continue the run in this --out folder "
                                                     "from its last checkpoint.")] = None,
) -> None:
    """Train a classifier on DATA: a probe on frozen features (default) or a fine-tuned network."""
    from transferkit.workflow import run_fit

    options = {k: v for k, v in ctx.params.items()}
    options["cache_dir"] = _cache_arg(cache_dir, no_cache)
    # flags the user typed (by name: typer may carry its own copy of click's ParameterSource enum)
    sources = {k: getattr(ctx.get_parameter_source(k), "name", None) for k in ctx.params}
    explicit = {k for k, source in sources.items() if source not in ("DEFAULT", "DEFAULT_MAP", None)}
    run_fit(options, explicit, console=console)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")],
    inputs: Annotated[list[str] | None, typer.Argument(
        help="Files or folders to classify; for a text model also sentences, text files (a line each) or "
             "tables; for a table model, tables of rows.")] = None,
    row: Annotated[list[str] | None, typer.Option(
        "--row", help="Table models: one row as JSON, e.g. '{\"title\": \"…\", \"price\": 3}' (repeatable).")] = None,
    text_column: Annotated[str | None, typer.Option(
        "--text-column", help="Text models: the column of tables to read (default: the training one).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="Show the K most likely labels.")] = 1,
    as_json: AsJson = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Print the predicted label and its probability for each input."""
    from transferkit.workflow import predict_and_print

    predict_and_print(model, inputs or [], top_k=top_k, fmt="json" if as_json else "csv" if as_csv else "table",
                      cache_dir=_cache_arg(cache_dir, no_cache), console=console, rows=row or [],
                      text_column=text_column)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")],
    data: Annotated[Path, typer.Argument(help="Labelled data in the same layout as for fit.")],
    path_column: Annotated[str, typer.Option(help="Manifest column with input paths.")] = "path",
    label_column: Annotated[str, typer.Option(help="Manifest column with labels.")] = "label",
    as_json: AsJson = False,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Score a trained model on new labelled data."""
    from transferkit.workflow import evaluate_and_print

    evaluate_and_print(model, data, path_column=path_column, label_column=label_column, as_json=as_json,
                       cache_dir=_cache_arg(cache_dir, no_cache), console=console)


@app.command()
def models(
    modality: Annotated[str | None, typer.Option(help="Only image, text or audio.")] = None,
    as_json: AsJson = False,
) -> None:
    """List registered backbones and whether their weights are available on this machine."""
    from transferkit.workflow import print_models

    print_models(modality, as_json=as_json, console=console)


@app.command()
def rank(
    data: Annotated[Path, typer.Argument(help="Labelled data in the same layout as for fit.")],
    backbones: Annotated[str | None, typer.Option(help="Comma-separated candidates, NAME or NAME@WEIGHTS "
                                                       "(e.g. efficientnet_lite0@random). Default: every "
                                                       "available backbone of the data's modality.")] = None,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated: logme, sfda, hscore, gbc, leep, nce, knn "
                                                     "(default logme,sfda,leep,nce; kNN is always shown).")] = None,
    select: Annotated[str, typer.Option(help="The metric that picks.")] = "logme",
    subsample: Annotated[int, typer.Option(help="Score a stratified subsample of N samples (0: all).")] = 1000,
    layers: Annotated[bool, typer.Option("--layers", help="Rank the layers (stages) of each backbone "
                                                          "instead: which layer transfers best.")] = False,
    seed: Seed = 0,
    batch_size: BatchSize = 32,
    precision: Precision = "auto",
    path_column: Annotated[str, typer.Option(help="Manifest column with input paths.")] = "path",
    label_column: Annotated[str, typer.Option(help="Manifest column with labels.")] = "label",
    modality: Annotated[str | None, typer.Option(help="image, text or audio (default: from the column flags, "
                                                      "else from DATA).")] = None,
    text_column: Annotated[str | None, typer.Option("--text-column", help="Column of texts.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", help="Column of image paths.")] = None,
    audio_column: Annotated[str | None, typer.Option("--audio-column", help="Column of audio paths.")] = None,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    as_json: AsJson = False,
) -> None:
    """Score how well each backbone's features transfer to DATA, and say which to use and why."""
    from transferkit.ranking.auto import rank_and_print

    rank_and_print(data, backbones=backbones, metrics=metrics, select=select, subsample=subsample, layers=layers,
                   seed=seed, batch_size=batch_size, precision=precision, cache_dir=_cache_arg(cache_dir, no_cache),
                   path_column=path_column, label_column=label_column, modality=modality, text_column=text_column,
                   image_column=image_column, audio_column=audio_column, as_json=as_json, console=console)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the digits images and model.")] = Path(
        "runs/digits-demo"
    ),
    backbone: Backbone = "efficientnet_lite0",
    seed: Seed = 0,
    precision: Precision = "auto",
) -> None:
    """Fit on scikit-learn's handwritten digits, pretrained vs random-init backbone."""
    from transferkit.demo import run_demo

    run_demo(out=out, backbone=backbone, seed=seed, precision=precision, console=console)


def main() -> None:
    """Entry point: run the app, turning transferkit errors into one-line messages."""
    from transferkit.errors import TransferkitError

    try:
        app()
    except TransferkitError as exc:
        if _state["debug"]:
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
