"""`transferkit fit`: THE fit pipeline, for every strategy and modality.

    resolve options → build the estimator (its parameters checked) → check --out → load + split once
    → --backbone auto / --strategy auto (they build it instead) → fit → evaluate on test → save
    → a `FitResult` → summary, report, export

Strategy and modality only choose the estimator (`build_estimator`, called once for the model
fitted); everything else is the same road, through the estimator contract (it never asks the
estimator's kind). The flags are generated from `FitOptions`, where each option is declared once.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NotRequired, TypedDict

import typer
from rich.console import Console

from transferkit.commands._console import console, print_class_counts, print_metrics, print_skipped
from transferkit.errors import ConfigError
from transferkit.jsontypes import JSONObject
from transferkit.options import FitOptions
from transferkit.params import declared

if typing.TYPE_CHECKING:
    from transferkit.adapt.target import TargetInputs
    from transferkit.backbones.spec import BackboneSpec
    from transferkit.data.dataset import LabelledData
    from transferkit.estimators.transfer_estimator import Params, TransferEstimator
    from transferkit.metrics import Metrics
    from transferkit.selection.keep import Comparison

# -- the command --------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command(name="fit", help="Train a classifier on DATA: a probe on frozen features (default) or a "
                "fine-tuned network.")(_fit_command())


def _cli_type(name: str, hint: object) -> object:
    """The type typer parses a flag as: unions of str with numbers are read as str and parsed later."""
    if name in ("lr", "devices"):
        return str | None
    return hint


def _fit_command() -> Callable[..., None]:
    """The `fit` command, its parameters generated from the `FitOptions` declarations."""

    def fit(ctx: typer.Context, data: Path, **values: Any) -> None:
        # the flags the user typed (by name: typer may carry its own copy of click's ParameterSource enum)
        explicit = {name for name in values
                    if getattr(ctx.get_parameter_source(name), "name", None) not in ("DEFAULT", "DEFAULT_MAP", None)}
        flags = {name: values[name] for name in explicit}
        from transferkit.options import from_sources

        run_fit(from_sources(flags, data=data), out=console)

    hints = FitOptions.option_types()
    params = [
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter("data", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          annotation=Annotated[Path, typer.Argument(help=FitOptions.declared()["data"].help)]),
    ]
    for f in dataclasses.fields(FitOptions):
        option = f.metadata.get("param")
        if option is None or not option.cli:
            continue
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                        annotation=Annotated[hints[f.name], typer.Option(*option.flags,
                                                                                         help=option.help)]))
    training = type(FitOptions().training)
    training_hints = typing.get_type_hints(training)
    for name, setting in declared(training).items():
        if not setting.flags:  # a YAML-only setting
            continue
        hint = _cli_type(name, training_hints[name] | None)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[hint, typer.Option(*setting.flags, help=setting.help)]))
    fit.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fit.__doc__ = "Train a classifier on DATA: a probe on frozen features (default) or a fine-tuned network."
    return fit


# -- the pipeline ------------------------------------------------------------------------------------


def build_estimator(options: FitOptions) -> TransferEstimator:
    """The estimator a resolved `FitOptions` asks for; its parameters are checked here, before any data."""
    from transferkit.backbones.registry import PRETRAINED_BACKBONES
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.estimators.probe import TransferClassifier
    from transferkit.estimators.tabular import TabularTransferClassifier

    quiet = options.as_json
    spec = options.backbone_spec
    estimator: TransferEstimator
    if options.modality == "table":
        columns = options.table_columns()
        encoders = table_backbones(spec)
        estimator = TabularTransferClassifier(
            image_columns=columns["image"], text_columns=columns["text"], audio_columns=columns["audio"],
            numeric_columns=columns["numeric"], categorical_columns=columns["categorical"],
            image_backbone=encoders.get("image", PRETRAINED_BACKBONES["image"]),
            text_backbone=encoders.get("text", PRETRAINED_BACKBONES["text"]),
            audio_backbone=encoders.get("audio", PRETRAINED_BACKBONES["audio"]),
            head=options.head, fusion=options.fusion, class_weight=options.class_weight, seed=options.seed,
            batch_size=options.batch_size, precision=options.precision, engine=options.engine,
            long_text=options.long_text, cache_dir=options.cache(), progress=not quiet)
        estimator.adopt_backbone_specs(*(spec.members if spec is not None else ()))
    elif options.strategy == "finetune":
        training = options.training
        if "class_weight" in options.explicit and "class_balance" not in options.explicit:
            training = dataclasses.replace(training, class_balance={"auto": "auto", "balanced": "weights",
                                                                    "none": "none"}.get(options.class_weight,
                                                                                        options.class_weight))
        estimator = FinetunedClassifier(
            str(_architecture(spec)), weights=_weights(options), head=options.head, seed=options.seed,
            batch_size=options.batch_size, precision=options.precision, training=training,
            cache_dir=False, progress=not quiet, engine=options.engine, run_dir=options.out_folder(),
            resume=options.resume is not None).adopt_backbone_specs(_architecture(spec))
    elif spec is not None and spec.kind == "ensemble":
        from transferkit.estimators.ensemble import EnsembleClassifier

        estimator = EnsembleClassifier([str(m) for m in spec.members], head=options.head,
                                       class_weight=options.class_weight,
                                       seed=options.seed, batch_size=options.batch_size, precision=options.precision,
                                       engine=options.engine, long_text=options.long_text, cache_dir=options.cache(),
                                       progress=not quiet, adapt_method=options.adapt_method
                                       ).adopt_backbone_specs(*spec.members)
    else:
        estimator = TransferClassifier(
            str(_architecture(spec)), weights=_weights(options), head=options.head, class_weight=options.class_weight,
            seed=options.seed, batch_size=options.batch_size, precision=options.precision, engine=options.engine,
            long_text=options.long_text, augment=options.views or 0, tta=options.tta, cache_dir=options.cache(),
            strict=options.strict, progress=not quiet, adapt_method=options.adapt_method
        ).adopt_backbone_specs(_architecture(spec))
    return estimator.validate()


def _architecture(spec: BackboneSpec | None) -> BackboneSpec:
    """What an estimator's `backbone` parameter names: the network without its `@weights` (a concatenation keeps
    its parts' own)."""
    if spec is None:
        raise ConfigError("no backbone resolved; name one with --backbone")
    if spec.kind not in ("model", "concat"):
        raise ConfigError(f"'{spec}' names several backbones, not one architecture")
    return spec.without_weights()


def _weights(options: FitOptions) -> str | None:
    """--weights, or the `@WEIGHTS` of `--backbone NAME@WEIGHTS` (not both)."""
    spec = options.backbone_spec
    given = spec.weights if spec is not None and spec.kind == "model" else None
    if given is not None and options.weights is not None and given != options.weights:
        raise ConfigError(f"--backbone '{spec}' names weights '{given}' and --weights '{options.weights}'; give one")
    return options.weights if given is None else given


def table_backbones(spec: BackboneSpec | None) -> dict[str, str]:
    """'--backbone text=minilm,image=efficientnet_lite2' → per-kind encoders of a table model."""
    if spec is None:
        return {}
    if spec.kind != "table":
        raise ConfigError(f"for a table, --backbone takes KIND=NAME pairs such as "
                          f"'text=all-minilm-l6-v2,image=efficientnet_lite0'; got '{spec}'")
    return {kind: str(model) for kind, model in spec.encoders().items()}


def load_data(options: FitOptions) -> tuple[LabelledData, list[str]]:
    """The labelled data, read once, as the resolved modality reads it; and notes about its repair."""
    from transferkit.data import load_labelled

    columns = options.table_columns()
    dataset, messages = load_labelled(options.data, modality=str(options.modality), path_column=options.path_column,
                                      label_column=options.label_column, columns=_ordered(columns),
                                      path_columns=columns["image"] + columns["audio"], encoding=options.encoding,
                                      group_column=options.groups())
    dataset.validate_for_training()
    return dataset, messages


def read_adapt_target(options: FitOptions, argument: str = "--adapt-to") -> TargetInputs | None:
    """`--adapt-to TARGET`'s unlabelled inputs (`adapt.TargetInputs`), read before any training; None without it.
    `argument`: how errors name it (`shift` says TARGET)."""
    if options.adapt_to is None:
        return None
    from transferkit.adapt import read_target

    columns = options.table_columns()
    return read_target(options.adapt_to, str(options.modality), path_column=options.path_column,
                       text_column=options.path_column, encoding=options.encoding, strict=options.strict,
                       columns=_ordered(columns), path_columns=columns["image"] + columns["audio"],
                       label_column=options.label_column, argument=argument)


def _ordered(columns: dict[str, list[str]]) -> list[str]:
    """A table's columns in the order of their blocks (image, text, audio, numeric, categorical)."""
    return [c for kind in ("image", "text", "audio", "numeric", "categorical") for c in columns[kind]]


class StrategyRecord(TypedDict):
    """`--strategy auto`'s decision as the bundle and the summary keep it: the rule and its figures (the
    estimate, the measured fine-tuning rate: steps/s, None when not measured), what `keep_better`
    compared, and the minutes the probe and the chosen fit took."""

    strategy: str
    rule: str
    reason: str
    estimated_minutes: float
    measured_rate: float | None
    keep: NotRequired[str]  # fine-tuning: the better on validation is kept (the rule in words)
    probe_minutes: NotRequired[float]
    actual_minutes: NotRequired[float]
    compared: NotRequired[Comparison]  # `selection.keep.KeepRecord`'s keys
    timeline: NotRequired[list[list[float | None]]]


class FitDecisions(TypedDict, total=False):
    """What fit decided for the user, saved beside the data's record in `transferkit.json`."""

    ranking: JSONObject  # --backbone auto: `selection.Selection.to_dict()`, the table as written
    strategy_decision: StrategyRecord
    adapt_target: JSONObject  # --adapt-to: the target's summary (`adapt.target`) and its unreadable count


@dataclasses.dataclass
class FitResult:
    """What one `fit` produced: what its summary, its bundle and its report need."""

    folder: Path
    options: FitOptions
    estimator: TransferEstimator
    dataset: LabelledData
    splits: dict[str, list[int]]
    #: the test split's metrics ({} without a test split)
    metrics: Metrics
    #: every input left out (data, fit, test, --adapt-to's target), by name → why
    skipped: dict[str, str]
    #: what --backbone auto / --strategy auto / --adapt-to decided, as the bundle records it
    decisions: FitDecisions


@dataclasses.dataclass
class _Choice:
    """The estimator to fit, chosen once; with --strategy auto, the probe it must beat on validation."""

    options: FitOptions
    estimator: TransferEstimator
    rival: TransferEstimator | None
    decisions: FitDecisions


def run_fit(options: FitOptions, *, out: Console = console) -> JSONObject:
    """`transferkit fit` from its options: the whole road, printing as it goes (JSON at the end with --json)."""
    from transferkit.runtime import is_rank_zero

    result = fit_pipeline(options, out=out)
    if result is None or not is_rank_zero():
        return {}
    summary = _summary(result)
    quiet = result.options.as_json
    if result.options.report:
        summary["report"] = str(_write_report(result.folder, result.dataset, result.splits, quiet=quiet, out=out))
    if result.options.export:
        summary["export"] = _export(result.folder, result.dataset, result.splits, quiet=quiet, out=out)
    if quiet:
        print(json.dumps(summary, indent=2, default=str))
        return summary
    _print_summary(result, summary, out)
    return summary


def fit_pipeline(options: FitOptions, *, out: Console = console) -> FitResult | None:
    """Resolve, check --out, load + split once, choose, fit, evaluate, save; None on a DDP rank other than 0."""
    from transferkit.data.split import split_indices
    from transferkit.options import resolve, resumed
    from transferkit.runtime import is_rank_zero
    from transferkit.selection import keep_better

    if options.resume is not None:
        from transferkit.finetune.checkpoint import read_run

        run = read_run(Path(options.resume))
        options = resumed(options, run.get("options", {}), Path(options.resume))
    options = resolve(options)
    quiet, rank0 = options.as_json, is_rank_zero()
    folder = options.out_folder()
    chosen = _prepare(options, folder, rank0=rank0)
    dataset, messages = load_data(options)
    target = read_adapt_target(options)
    splits = split_indices(dataset.labels, val_fraction=options.val, test_fraction=options.test, seed=options.seed,
                           splits=dataset.splits, groups=dataset.groups)
    if not quiet and rank0:
        _print_data(dataset, splits, messages, out)
    if chosen is None:
        choice = _choose(options, dataset, splits, rank0=rank0, out=out if rank0 and not quiet else None,
                         target=target.items if target is not None else None)
        if rank0:
            choice.estimator.prepare_output(folder, overwrite=options.overwrite)
    else:
        choice = _Choice(options, chosen, None, {})
    options, estimator, decisions = choice.options, choice.estimator, choice.decisions
    if target is not None and not estimator.adapts_to_target:
        raise ConfigError(f"--adapt-to cannot adapt a {estimator.kind} model; use --strategy probe or finetune")

    train, valid, test = (dataset.subset(splits.get(s, [])) for s in ("train", "val", "test"))
    has_val = len(valid) > 0
    targets: Params = {"X_target": target.items} if target is not None else {}
    if choice.rival is not None:
        # --strategy auto: the probe a plain `fit` gives, fitted first (seconds), to beat on validation
        started = time.perf_counter()
        choice.rival.fit(train, X_val=valid.items, y_val=valid.labels, **targets)  # adapted like the fine-tune
        decisions["strategy_decision"]["probe_minutes"] = (time.perf_counter() - started) / 60.0
    extra: Params = {"run_record": options.to_record()} if estimator.writes_run_folder else {}
    started = time.perf_counter()
    estimator.fit(train, X_val=valid.items if has_val else None, y_val=valid.labels if has_val else None,
                  **extra, **targets)  # fine-tuning with a target: MCC on target batches (+ AdaBN if asked)
    if "strategy_decision" in decisions:  # the estimate beside what it cost
        decisions["strategy_decision"]["actual_minutes"] = (time.perf_counter() - started) / 60.0
    if not rank0:
        return None
    if choice.rival is not None:
        estimator = keep_better(choice.rival, estimator, valid, decisions["strategy_decision"], train=train,
                                target=target.items if target is not None else None)
    metrics: Metrics = estimator.evaluate(test) if len(test) else {}
    skipped = {**dataset.skipped, **estimator.fit_report_.skipped, **metrics.get("skipped", {})}
    if target is not None:  # the target's unreadable inputs: counted and named with the rest
        decisions["adapt_target"] = _target_skipped(estimator, target, skipped)
    estimator.save(folder, metrics={**metrics, "skipped": skipped},
                   overwrite=options.overwrite or estimator.writes_run_folder or choice.rival is not None,
                   extra={"data": _data_record(options, splits, dataset), **decisions})
    return FitResult(folder, options, estimator, dataset, splits, metrics, skipped, decisions)


def _prepare(options: FitOptions, folder: Path, *, rank0: bool) -> TransferEstimator | None:
    """Check --out before any data is read; with nothing to choose, build the estimator now (its parameters
    checked, its output prepared). None: --backbone/--strategy auto will build it."""
    from transferkit.options import is_auto_backbone

    if options.resume is None:
        from transferkit.outputs import check_out_outside

        check_out_outside(folder, options.data)
    chosen = None if is_auto_backbone(options) or options.strategy == "auto" else build_estimator(options)
    if rank0 and chosen is not None:
        chosen.prepare_output(folder, overwrite=options.overwrite)
    elif rank0:
        from transferkit.bundle import check_writable

        check_writable(folder, overwrite=options.overwrite)
    return chosen


def _target_skipped(estimator: TransferEstimator, target: TargetInputs, skipped: dict[str, str]) -> JSONObject:
    """Add --adapt-to's unreadable target inputs to `skipped` (named 'target …'); the target's record."""
    members = getattr(estimator, "members_", [estimator])
    failed = {k: v for m in members for k, v in getattr(m, "target_skipped_", {}).items()}
    skipped.update({f"target {k}": v for k, v in {**target.skipped, **failed}.items()})
    return {**target.summary(), "target_skipped": len(target.skipped) + len(failed)}


def _print_data(dataset: LabelledData, splits: dict[str, list[int]], messages: list[str], out: Console) -> None:
    """The class counts per split, the groups held out, and what was repaired in the data."""
    print_class_counts(dataset, splits, out)
    if dataset.groups is not None:
        held = {s: sorted({dataset.groups[i] for i in splits[s]}) for s in ("val", "test") if splits.get(s)}
        out.print("groups held out: " + "; ".join(f"{s} {', '.join(g[:6])}{' …' if len(g) > 6 else ''}"
                                                 for s, g in held.items()), highlight=False)
    for message in messages:
        out.print(f"[yellow]{message}[/]", highlight=False)


def _summary(result: FitResult) -> JSONObject:
    """What `fit` prints, and dumps with --json."""
    metrics, decisions = result.metrics, result.decisions
    summary = {"out": str(result.folder), **result.estimator.summary(), "n_test": metrics.get("n", 0),
               "accuracy": metrics.get("accuracy"), "balanced_accuracy": metrics.get("balanced_accuracy"),
               "macro_f1": metrics.get("macro_f1"), "skipped": len(result.skipped), **result.dataset.notes()}
    if "adapt_target" in decisions:
        summary["adaptation"] = {**summary.get("adaptation", {}), **decisions["adapt_target"]}
        adaptation = summary["adaptation"]  # the numbers and verdicts; the maps' points stay in the bundle
        for record in [adaptation, *(adaptation.get("columns") or {}).values()]:
            if "shift" in record:
                record["shift"] = {k: v for k, v in record["shift"].items() if k != "map"}
    if "columns" in metrics:  # a table: what each column met on the test split
        summary["test_columns"] = metrics["columns"]
    if "strategy_decision" in decisions:
        summary["strategy_decision"] = decisions["strategy_decision"]
    return summary


def _export(folder: Path, dataset: LabelledData, splits: dict[str, list[int]], *, quiet: bool,
            out: Console) -> JSONObject:
    """RUN/onnx, checked on up to 16 test (else validation) images; a model that cannot be exported
    as one graph (an ensemble, a concatenation, --tta) keeps its bundle and says why, in yellow."""
    from transferkit.errors import ConfigError, EngineError
    from transferkit.estimators.onnx_export import export_model

    part = "test" if splits.get("test") else "val"
    samples = [dataset.items[i] for i in splits.get(part, [])[:16]]
    try:
        if quiet:
            report = export_model(folder, samples=samples, overwrite=True)
        else:
            with out.status("exporting and checking against PyTorch…"):
                report = export_model(folder, samples=samples, overwrite=True)
    except (ConfigError, EngineError) as exc:
        if not quiet:
            out.print(f"[yellow]not exported:[/] {exc}", highlight=False)
        return {"error": str(exc)}
    return {"folder": str(report.folder), "max_probability_difference": report.max_difference,
            "checked_on": report.checked_on}


def _write_report(folder: Path, dataset: LabelledData, splits: dict[str, list[int]], *, quiet: bool,
                  out: Console) -> Path:
    """RUN/report.html on the test split (on validation when there is no test split)."""
    from transferkit.errors import DataError
    from transferkit.estimators.load import load
    from transferkit.report import default_report_path, write_report
    from transferkit.report.labelled import from_labelled

    part = "test" if splits.get("test") else "val"
    if not splits.get(part):
        raise DataError("--report needs labelled data the model did not train on: keep a test or val split")
    model = load(folder, progress=False)
    data = from_labelled(model.manifest_, dataset.subset(splits[part]),
                         description=f"{part} split of {dataset.source} ({len(splits[part])} examples)")
    if quiet:
        return write_report(model, data, default_report_path(folder), run_dir=folder)
    with out.status("drawing the report…"):
        written = write_report(model, data, default_report_path(folder), run_dir=folder)
    out.print(f"[green]report[/] {written}")
    return written


def _choose(options: FitOptions, dataset: LabelledData, splits: dict[str, list[int]], *, rank0: bool,
            out: Console | None, target: list[object] | None = None) -> _Choice:
    """`--backbone auto` (rank on train + val: the test split never steers it; with `--adapt-to`, by DEV on
    the target's inputs) and `--strategy auto`; the estimator they choose, built once."""
    from transferkit.options import is_auto_backbone, with_backbone

    decisions: FitDecisions = {}
    if is_auto_backbone(options):
        if options.weights:
            raise ConfigError("--weights applies to one backbone; with --backbone auto name controls as "
                              "--backbone auto:NAME,NAME@random")
        from transferkit.ranking.rank_backbones import ranking_options
        from transferkit.selection import select

        named = list(options.backbone_spec.members) if options.backbone_spec else None
        given_val = dataset.splits is not None and "val" in dataset.splits
        held = ("the data's own validation split" if given_val else "whole groups held out"
                if dataset.groups is not None else "examples held out at random")
        selection = select(dataset, splits["train"], splits.get("val", []), candidates=named, cache=options.cache(),
                           options=ranking_options(options.batch_size, options.precision, progress=out is not None),
                           seed=options.seed, validation=f"{len(splits.get('val', []))} examples, {held}",
                           target=target, budget_seconds=60 * options.budget if options.budget else None)
        winner = selection.winner
        if winner is None:
            raise ConfigError("--backbone auto could not score any candidate: "
                              + "; ".join(f"{c.name}: {c.note}" for c in selection.candidates))
        if out is not None:
            out.print(selection)
        options = with_backbone(options, *winner.backbone())
        decisions["ranking"] = selection.to_dict()
    if options.strategy != "auto":
        return _Choice(options, build_estimator(options), None, decisions)
    options, estimator, decisions["strategy_decision"] = _decide_strategy(options, dataset, splits, out=out)
    rival = None
    if decisions["strategy_decision"].get("keep") and splits.get("val") and rank0:
        rival = build_estimator(_probe_options(options))
    return _Choice(options, estimator, rival, decisions)


def _decide_strategy(options: FitOptions, dataset: LabelledData, splits: dict[str, list[int]], *,
                     out: Console | None) -> tuple[FitOptions, TransferEstimator, StrategyRecord]:
    """`--strategy auto` (`selection.choose_strategy`) on these options: the fine-tuning estimator it
    measures is the one fitted when chosen. Fine-tuning, when chosen, keeps the probe it starts from
    instead if that scores higher on validation."""
    from transferkit.selection import choose_strategy

    keep_better = "keep" not in options.explicit and bool(splits.get("val"))
    tuned = dataclasses.replace(options, strategy="finetune", training=dataclasses.replace(
        options.training, keep="better") if keep_better else options.training)
    sample = [dataset.items[i] for i in splits["train"][: 3 * options.batch_size]]
    decision, candidate, rate = choose_strategy(
        len(splits["train"]), len(dataset.classes), sample, lambda: build_estimator(tuned),
        budget_minutes=options.budget, epochs=options.training.epochs if "epochs" in options.explicit else None,
        device=_device_kind(options))
    if out is not None:
        out.print(f"[bold]--strategy auto:[/] {decision}")
    record: StrategyRecord = {"strategy": decision.strategy, "rule": decision.rule, "reason": decision.reason,
                              "estimated_minutes": decision.estimated_minutes, "measured_rate": rate}
    if decision.strategy != "finetune":
        chosen = dataclasses.replace(options, strategy=decision.strategy)
        return chosen, build_estimator(chosen), record
    if keep_better:
        record["keep"] = ("the better on validation: the default probe, or the fine-tuned network (itself kept "
                          "only if it beats the probe LP-FT started from)")
    return tuned, candidate if candidate is not None else build_estimator(tuned), record


def _probe_options(options: FitOptions) -> FitOptions:
    """The options of the probe `--strategy auto` weighs fine-tuning against: the default probe of
    the same data (its own default backbone when none was named)."""
    from transferkit.backbones.registry import DEFAULT_BACKBONES
    from transferkit.options import with_backbone

    probe = dataclasses.replace(options, strategy="probe")
    default = DEFAULT_BACKBONES.get(str(options.modality))
    if "backbone" in options.explicit or default is None:
        return probe
    from transferkit.backbones.spec import parse_backbone

    return with_backbone(probe, parse_backbone(default), options.weights)  # the default's name, not the user's text


def _device_kind(options: FitOptions) -> str:
    if options.training.accelerator in ("cpu", "gpu"):
        return options.training.accelerator
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _data_record(options: FitOptions, splits: dict[str, list[int]], dataset: LabelledData) -> JSONObject:
    """What the bundle records of the data: enough to read it again the same way and split it the same way."""
    return {"source": str(options.data), "modality": options.modality, "path_column": options.path_column,
            "label_column": options.label_column, "columns": options.table_columns(), "seed": options.seed,
            "val": options.val, "test": options.test, "splits": {k: len(v) for k, v in splits.items()},
            "group_column": options.groups() if dataset.groups is not None else None,
            "encoding": options.encoding, **dataset.notes()}


def _print_summary(result: FitResult, summary: JSONObject, out: Console) -> None:
    from transferkit.commands._console import column_notes, text_notes_line

    estimator, metrics, skipped, folder = result.estimator, result.metrics, result.skipped, result.folder
    if metrics:
        print_metrics(metrics, out)
    report = estimator.fit_report_
    if "epochs_run" in summary:  # a network was trained
        if summary.get("lr_found"):
            out.print(f"[bold]--lr auto:[/] the learning-rate finder chose {summary['lr']:.3g} (steepest loss "
                      "descent); saved in the bundle")
        out.print(f"fine-tuned {summary['backbone']} ({summary['freeze']}) for {summary['epochs_run']} epochs in "
                  f"{summary['seconds']:.1f}s, lr {summary['lr']:.3g}, best epoch {summary['best_epoch']}, "
                  f"{summary['precision']}; logs in {folder / 'logs'}")
    elif estimator.modality_ == "table":
        for line in column_notes(summary.get("columns", {}), "training + validation: ") + column_notes(
                summary.get("test_columns", {}), "test: "):
            out.print(f"[yellow]{line}[/]", highlight=False)
        gates = report.head_choice.get("mean_gates")  # a gated fusion head's (`heads.fusion.FusionChoice`)
        if isinstance(gates, list) and gates:
            names = list(summary.get("columns", {}))  # block order
            out.print("gated fusion, mean gate per column: "
                      + ", ".join(f"{n}={g:.2f}" for n, g in zip(names, gates, strict=False)), highlight=False)
    else:
        choice = ", ".join(f"{k}={v}" for k, v in report.head_choice.items() if not isinstance(v, dict))
        out.print(f"features: {report.extracted} extracted, {report.cached} from cache ({report.precision} on "
                  f"{report.engine}, {report.extract_seconds:.1f}s); head: {summary['head']} ({choice}); "
                  f"{'class-weighted' if report.class_weighted else 'unweighted'}")
        views = report.head_choice.get("views")  # the probe's with `augment` (`estimators.probe.ProbeChoice`)
        if isinstance(views, dict) and views:
            out.print(f"[bold]training views:[/] {views['why']} (chosen by {views.get('criterion', 'request')})",
                      highlight=False)
    for note in report.engine_notes:
        out.print(f"engine: {note}", highlight=False)
    _print_adaptation(summary, out)
    kept = summary.get("kept")
    if kept:
        out.print(f"kept the {kept['kept']}: validation accuracy {100 * kept['val_accuracy_probe']:.1f}% for the probe "
                  f"LP-FT started from, {100 * kept['val_accuracy_finetuned']:.1f}% fine-tuned "
                  f"({kept['n_val']} examples)", highlight=False)
    _print_strategy(summary, out)
    print_skipped(skipped, out)
    text_line = text_notes_line(summary)
    if text_line:
        out.print(text_line, highlight=False)
    rows = " ROWS.csv  (or --row '{…}')" if estimator.modality_ == "table" else " FILES…"
    exported = summary.get("export") or {}
    if exported.get("folder"):
        out.print(f"[green]exported[/] {exported['folder']} (largest probability difference against PyTorch "
                  f"{exported['max_probability_difference']:.2g} on {exported['checked_on']}): predict runs it "
                  "without PyTorch", highlight=False)
    out.print(f"[green]saved[/] {folder}  →  transferkit predict {folder}{rows}")


def _print_adaptation(summary: JSONObject, out: Console) -> None:
    """`--adapt-to`: how far the target is, and what was done with it."""
    adaptation = summary.get("adaptation")
    if adaptation:
        from transferkit.commands._console import print_shift

        for name, record in [(None, adaptation), *(adaptation.get("columns") or {}).items()]:
            if record.get("shift"):
                print_shift(record["shift"], out, heading="how far is the target? (features of the training data "
                                                          "vs --adapt-to's" + (f", column '{name}')" if name else ")"))
        labels = f"; labels: {adaptation['target_labels']}" if adaptation.get("target_labels") else ""
        out.print(f"[bold]adapted to[/] {adaptation.get('target')} ({adaptation.get('target_inputs')} unlabelled "
                  f"inputs, {adaptation.get('target_skipped', 0)} unreadable skipped{labels}): "
                  f"{adaptation.get('applied')} — {adaptation.get('why')}. " + (
                      "The network trained on the labelled batches with target batches beside them (their labels "
                      "never used)" if summary.get("strategy") == "finetune" else
                      "The target's features were aligned to the training data's; the head trained on the training "
                      "data alone"), highlight=False)
        latent = adaptation.get("latent_domains")
        if latent:
            out.print(f"  {latent.get('why')}", highlight=False)


def _print_strategy(summary: JSONObject, out: Console) -> None:
    """`--strategy auto`: its estimate against what it took, and which of probe and network it kept, and why."""
    from transferkit.selection.strategy import duration

    decision = summary.get("strategy_decision")
    if decision and decision.get("actual_minutes") is not None and decision["strategy"] == "finetune":
        out.print(f"--strategy auto estimated {duration(decision['estimated_minutes'])} of fine-tuning; it took "
                  f"{duration(decision['actual_minutes'])}", highlight=False)
    compared = (decision or {}).get("compared")
    if compared and decision:
        other = "fine-tuned network" if compared["kept"] == "probe" else f"probe ({compared['probe_backbone']})"
        out.print(f"[bold]--strategy auto kept the {compared['kept']}[/]: validation accuracy "
                  f"{100 * compared['val_accuracy_probe']:.1f}% probe, {100 * compared['val_accuracy_finetuned']:.1f}% "
                  f"fine-tuned ({compared['n_val']} examples); the {other} was set aside", highlight=False)
        if compared.get("dev"):
            dev = compared["dev"]
            out.print(f"  chosen by {compared['criterion']}: estimated target accuracy "
                      f"{100 * dev['probe']['dev_accuracy']:.1f}% probe, {100 * dev['finetuned']['dev_accuracy']:.1f}% "
                      "fine-tuned", highlight=False)
        if decision.get("probe_minutes") is not None and decision.get("actual_minutes") is not None:
            gain = 100 * (compared["val_accuracy_finetuned"] - compared["val_accuracy_probe"])
            extra_minutes = decision["actual_minutes"]  # fine-tuning's own time, after the probe
            out.print(f"what the minutes bought: the probe {100 * compared['val_accuracy_probe']:.1f}% in "
                      f"{duration(decision['probe_minutes'])}; fine-tuning {gain:+.1f} points for "
                      f"{duration(extra_minutes)} more ({gain / max(extra_minutes, 1e-9):+.1f} points a minute)",
                      highlight=False)
