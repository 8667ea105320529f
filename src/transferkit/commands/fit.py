"""`transferkit fit`: THE fit pipeline, for every strategy and modality.

    resolve options → build the estimator (its parameters checked) → check --out → load + split once
    → --backbone auto / --strategy auto → fit → evaluate on test → save → summary

Strategy and modality only choose the estimator (`build_estimator`); everything else is the same
road. The flags are generated from `FitOptions`, where each option is declared once.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from transferkit.commands._console import console, print_class_counts, print_metrics, print_skipped
from transferkit.errors import ConfigError
from transferkit.options import TRAINING_FLAGS, FitOptions

if typing.TYPE_CHECKING:
    from transferkit.backbones.spec import BackboneSpec
    from transferkit.data.dataset import LabelledData
    from transferkit.estimators.base import TransferEstimator

# -- the command --------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command(name="fit", help="Train a classifier on DATA: a probe on frozen features (default) or a "
                "fine-tuned network.")(_fit_command())


def _cli_type(name: str, hint: Any) -> Any:
    """The type typer parses a flag as: unions of str with numbers are read as str and parsed later."""
    if name in ("lr", "devices"):
        return str | None
    return hint


def _fit_command() -> Any:
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
        option = f.metadata.get("option")
        if option is None or not option.cli:
            continue
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                        annotation=Annotated[hints[f.name], typer.Option(*option.flags,
                                                                                         help=option.help)]))
    training_hints = typing.get_type_hints(type(FitOptions().training))
    for name, help_text in TRAINING_FLAGS.items():
        hint = _cli_type(name, training_hints[name] | None)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[hint, typer.Option(f"--{name}", help=help_text)]))
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
    elif options.strategy == "finetune":
        training = options.training
        if "class_weight" in options.explicit and "class_balance" not in options.explicit:
            training = dataclasses.replace(training, class_balance={"auto": "auto", "balanced": "weights",
                                                                    "none": "none"}.get(options.class_weight,
                                                                                        options.class_weight))
        estimator = FinetunedClassifier(
            _architecture(spec), weights=_weights(options), head=options.head, seed=options.seed,
            batch_size=options.batch_size, precision=options.precision, training=training,
            cache_dir=False, progress=not quiet, engine=options.engine, run_dir=options.out_folder(),
            resume=options.resume is not None)
    elif spec is not None and spec.kind == "ensemble":
        from transferkit.estimators.ensemble import EnsembleClassifier

        members = [str(m) for m in spec.members]
        estimator = EnsembleClassifier(members, head=options.head, class_weight=options.class_weight,
                                       seed=options.seed, batch_size=options.batch_size, precision=options.precision,
                                       engine=options.engine, long_text=options.long_text, cache_dir=options.cache(),
                                       progress=not quiet, adapt_method=options.adapt_method)
    else:
        estimator = TransferClassifier(
            _architecture(spec), weights=_weights(options), head=options.head, class_weight=options.class_weight,
            seed=options.seed, batch_size=options.batch_size, precision=options.precision, engine=options.engine,
            long_text=options.long_text, augment=options.views or 0, tta=options.tta, cache_dir=options.cache(),
            strict=options.strict, progress=not quiet, adapt_method=options.adapt_method)
    return estimator.validate()


def _architecture(spec: BackboneSpec | None) -> str:
    """What an estimator's `backbone` parameter takes: the network without its `@weights`."""
    if spec is None:
        raise ConfigError("no backbone resolved; name one with --backbone")
    return spec.architecture


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
    ordered = [c for kind in ("image", "text", "audio", "numeric", "categorical") for c in columns[kind]]
    dataset, messages = load_labelled(options.data, modality=str(options.modality), path_column=options.path_column,
                                      label_column=options.label_column, columns=ordered,
                                      path_columns=columns["image"] + columns["audio"], encoding=options.encoding,
                                      group_column=options.groups())
    dataset.validate_for_training()
    return dataset, messages


def read_adapt_target(options: FitOptions) -> Any:
    """`--adapt-to TARGET`'s unlabelled inputs (`adapt.TargetInputs`), read before any training; None without it."""
    if options.adapt_to is None:
        return None
    from transferkit.adapt import read_target

    return read_target(options.adapt_to, str(options.modality), path_column=options.path_column,
                       text_column=options.path_column, encoding=options.encoding, strict=options.strict)


def run_fit(options: FitOptions, *, out: Console = console) -> dict[str, Any]:
    """`transferkit fit` from its options: the whole road, printing as it goes (JSON at the end with --json)."""
    from transferkit.data.split import split_indices
    from transferkit.options import is_auto_backbone, resolve, resumed
    from transferkit.runtime import is_rank_zero

    if options.resume is not None:
        from transferkit.finetune.checkpoint import read_run

        run = read_run(Path(options.resume))
        options = resumed(options, run.get("options", {}), Path(options.resume))
    options = resolve(options)
    quiet, rank0 = options.as_json, is_rank_zero()
    folder = options.out_folder()
    if options.resume is None:
        from transferkit.outputs import check_out_outside

        check_out_outside(folder, options.data)
    estimator = build_estimator(options) if not is_auto_backbone(options) else None
    if rank0 and estimator is not None:
        estimator.prepare_output(folder, overwrite=options.overwrite)
    elif rank0:
        from transferkit.bundle import check_writable

        check_writable(folder, overwrite=options.overwrite)
    dataset, messages = load_data(options)
    target = read_adapt_target(options)
    splits = split_indices(dataset.labels, val_fraction=options.val, test_fraction=options.test, seed=options.seed,
                           splits=dataset.splits, groups=dataset.groups)
    if not quiet and rank0:
        print_class_counts(dataset, splits, out)
        if dataset.groups is not None:
            held = {s: sorted({dataset.groups[i] for i in splits[s]}) for s in ("val", "test") if splits.get(s)}
            out.print("groups held out: " + "; ".join(f"{s} {', '.join(g[:6])}{' …' if len(g) > 6 else ''}"
                                                     for s, g in held.items()), highlight=False)
        for message in messages:
            out.print(f"[yellow]{message}[/]", highlight=False)

    decisions: dict[str, Any] = {}
    options, decisions = _choose(options, dataset, splits, out=out if rank0 and not quiet else None)
    if estimator is None or decisions:
        estimator = build_estimator(options)
        if rank0 and "strategy_decision" in decisions:
            estimator.prepare_output(folder, overwrite=options.overwrite)

    train, valid, test = (dataset.subset(splits.get(s, [])) for s in ("train", "val", "test"))
    has_val = len(valid) > 0
    extra: dict[str, Any] = {"run_record": options.to_record()} if estimator.kind == "finetuned" else {}
    probe: TransferEstimator | None = None
    if decisions.get("strategy_decision", {}).get("keep") and has_val and rank0:
        # --strategy auto: the probe a plain `fit` gives, fitted first (seconds), to beat on validation
        probe = build_estimator(_probe_options(options))
        probe_started = time.perf_counter()
        probe.fit(train, X_val=valid.items, y_val=valid.labels,
                  **({"X_target": target.items} if target is not None else {}))  # adapted like the fine-tune
        decisions["strategy_decision"]["probe_minutes"] = (time.perf_counter() - probe_started) / 60.0
    if target is not None:
        if estimator.kind not in ("probe", "ensemble", "finetuned"):
            from transferkit.errors import ConfigError

            raise ConfigError(f"--adapt-to cannot adapt a {estimator.kind} model; use --strategy probe or finetune")
        extra["X_target"] = target.items  # fine-tuning: MCC on target batches, then AdaBN (finetune/)
    started = time.perf_counter()
    estimator.fit(train, X_val=valid.items if has_val else None, y_val=valid.labels if has_val else None, **extra)
    if "strategy_decision" in decisions:  # the estimate beside what it cost
        decisions["strategy_decision"]["actual_minutes"] = (time.perf_counter() - started) / 60.0
    if not rank0:
        return {}
    if probe is not None:
        estimator = _keep_better(probe, estimator, valid, decisions["strategy_decision"])
    metrics: dict[str, Any] = estimator.evaluate(test) if len(test) else {}
    skipped = {**dataset.skipped, **estimator.fit_report_.skipped, **metrics.get("skipped", {})}
    if target is not None:  # the target's unreadable inputs: counted and named with the rest
        members = getattr(estimator, "members_", [estimator])
        failed = {k: v for m in members for k, v in getattr(m, "target_skipped_", {}).items()}
        skipped.update({f"target {k}": v for k, v in {**target.skipped, **failed}.items()})
        decisions["adapt_target"] = {**target.summary(), "target_skipped": len(target.skipped) + len(failed)}
    estimator.save(folder, metrics={**metrics, "skipped": skipped},
                   overwrite=options.overwrite or estimator.kind == "finetuned" or probe is not None,
                   extra={"data": _data_record(options, splits, dataset), **decisions})
    summary = {"out": str(folder), **estimator.summary(), "n_test": metrics.get("n", 0),
               "accuracy": metrics.get("accuracy"), "balanced_accuracy": metrics.get("balanced_accuracy"),
               "macro_f1": metrics.get("macro_f1"), "skipped": len(skipped), **dataset.notes()}
    if target is not None:
        summary["adaptation"] = {**summary.get("adaptation", {}), **decisions["adapt_target"]}
        if "shift" in summary["adaptation"]:  # the numbers and verdict; the map's points stay in the bundle
            summary["adaptation"]["shift"] = {k: v for k, v in summary["adaptation"]["shift"].items() if k != "map"}
    if estimator.kind == "tabular":
        summary["test_columns"] = metrics.get("columns", {})
    if "strategy_decision" in decisions:
        summary["strategy_decision"] = decisions["strategy_decision"]
    if options.report:
        summary["report"] = str(_write_report(folder, dataset, splits, quiet=quiet, out=out))
    if options.export:
        summary["export"] = _export(folder, dataset, splits, quiet=quiet, out=out)
    if quiet:
        print(json.dumps(summary, indent=2, default=str))
        return summary
    _print_summary(estimator, summary, metrics, skipped, folder, out)
    return summary


def _export(folder: Path, dataset: LabelledData, splits: dict[str, list[int]], *, quiet: bool,
            out: Console) -> dict[str, Any]:
    """RUN/onnx, checked on up to 16 test (else validation) images; a model that cannot be exported
    as one graph (an ensemble, a concatenation, --tta) keeps its bundle and says why, in yellow."""
    from transferkit.errors import ConfigError, EngineError
    from transferkit.estimators.export import export_model

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
    from transferkit.report.data import from_labelled

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


def _choose(options: FitOptions, dataset: LabelledData, splits: dict[str, list[int]], *,
            out: Console | None) -> tuple[FitOptions, dict[str, Any]]:
    """`--backbone auto` (rank on train + val: the test split never steers it) and `--strategy auto`."""
    from transferkit.errors import ConfigError
    from transferkit.options import is_auto_backbone, with_backbone

    decisions: dict[str, Any] = {}
    if is_auto_backbone(options):
        if options.weights:
            raise ConfigError("--weights applies to one backbone; with --backbone auto name controls as "
                              "--backbone auto:NAME,NAME@random")
        from transferkit.ranking.rank import ranking_options
        from transferkit.ranking.select import select

        names = [str(m) for m in options.backbone_spec.members] if options.backbone_spec else None
        given_val = dataset.splits is not None and "val" in dataset.splits
        held = ("the data's own validation split" if given_val else "whole groups held out"
                if dataset.groups is not None else "examples held out at random")
        selection = select(dataset, splits["train"], splits.get("val", []), candidates=names, cache=options.cache(),
                           options=ranking_options(options.batch_size, options.precision, progress=out is not None),
                           seed=options.seed, validation=f"{len(splits.get('val', []))} examples, {held}",
                           budget_seconds=60 * options.budget if options.budget else None)
        winner = selection.winner
        if winner is None:
            raise ConfigError("--backbone auto could not score any candidate: "
                              + "; ".join(f"{c.name}: {c.note}" for c in selection.candidates))
        if out is not None:
            out.print(selection)
        options = with_backbone(options, *winner.backbone())
        decisions["ranking"] = selection.to_dict()
    if options.strategy == "auto":
        options, decisions["strategy_decision"] = _decide_strategy(options, dataset, splits, out=out)
    return options, decisions


def _decide_strategy(options: FitOptions, dataset: LabelledData, splits: dict[str, list[int]], *,
                     out: Console | None) -> tuple[FitOptions, dict[str, Any]]:
    """`--strategy auto`: the small-data rule, then the budget rule on fine-tuning's rate measured here.
    Fine-tuning, when chosen, keeps the probe it starts from instead if that scores higher on validation."""
    from transferkit.errors import BackboneError, ConfigError
    from transferkit.ranking.strategy import StrategyDecision, decide_strategy, too_little_data

    epochs = options.training.epochs if "epochs" in options.explicit else None
    args = dict(budget_minutes=options.budget, epochs=epochs, device=_device_kind(options))
    n_train, n_classes = len(splits["train"]), len(dataset.classes)
    decision = decide_strategy(n_train, n_classes, **args)  # type: ignore[arg-type]
    rate = None
    if not too_little_data(n_train, n_classes):  # only then does the rate matter
        trial = dataclasses.replace(options, strategy="finetune")
        try:
            candidate = build_estimator(trial)
            sample = [dataset.items[i] for i in splits["train"][: 3 * options.batch_size]]
            rate = candidate.training_rate(sample, n_classes)
            decision = decide_strategy(n_train, n_classes, measured_rate=rate, **args)  # type: ignore[arg-type]
        except (BackboneError, ConfigError) as exc:  # a concatenation: a probe's, not a network to train
            decision = StrategyDecision("probe", "cannot be fine-tuned → probe", str(exc), 0.0)
    if out is not None:
        out.print(f"[bold]--strategy auto:[/] {decision}")
    record: dict[str, Any] = {"strategy": decision.strategy, "rule": decision.rule, "reason": decision.reason,
                              "estimated_minutes": decision.estimated_minutes, "measured_rate": rate}
    changes: dict[str, Any] = {"strategy": decision.strategy}
    if decision.strategy == "finetune" and "keep" not in options.explicit and splits.get("val"):
        changes["training"] = dataclasses.replace(options.training, keep="better")
        record["keep"] = ("the better on validation: the default probe, or the fine-tuned network (itself kept "
                          "only if it beats the probe LP-FT started from)")
    return dataclasses.replace(options, **changes), record



def _probe_options(options: FitOptions) -> FitOptions:
    """The options of the probe `--strategy auto` weighs fine-tuning against: the default probe of
    the same data (its own default backbone when none was named)."""
    from transferkit.backbones.registry import DEFAULT_BACKBONES

    backbone = options.backbone if "backbone" in options.explicit else DEFAULT_BACKBONES.get(str(options.modality),
                                                                                             options.backbone)
    return dataclasses.replace(options, strategy="probe", backbone=backbone)


def _keep_better(probe: TransferEstimator, tuned: TransferEstimator, valid: LabelledData,
                 record: dict[str, Any]) -> TransferEstimator:
    """The better on validation of the default probe and the fine-tuned network (a tie keeps the probe:
    seconds to train, and no worse). The probe's figure is from before its head was refitted on
    train + validation."""
    from transferkit.heads import chosen_val_accuracy

    probe_val = chosen_val_accuracy(probe.fit_report_.head_choice)
    if probe_val is None:  # an MLP head (validation only stopped it): score it
        probe_val = probe.score(valid.items, valid.labels)
    tuned_val = float(tuned.score(valid.items, valid.labels))
    kept = "finetuned" if tuned_val > float(probe_val) else "probe"
    record["compared"] = {"kept": kept, "val_accuracy_probe": float(probe_val), "val_accuracy_finetuned": tuned_val,
                          "probe_backbone": probe.summary().get("backbone"), "n_val": len(valid)}
    # fine-tuning epoch by epoch, kept with the decision: the report draws it whichever was kept
    record["timeline"] = list(getattr(tuned.fit_report_, "timeline", []))
    return tuned if kept == "finetuned" else probe


def _device_kind(options: FitOptions) -> str:
    if options.training.accelerator in ("cpu", "gpu"):
        return options.training.accelerator
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _data_record(options: FitOptions, splits: dict[str, list[int]], dataset: LabelledData) -> dict[str, Any]:
    """What the bundle records of the data: enough to read it again the same way and split it the same way."""
    return {"source": str(options.data), "modality": options.modality, "path_column": options.path_column,
            "label_column": options.label_column, "columns": options.table_columns(), "seed": options.seed,
            "val": options.val, "test": options.test, "splits": {k: len(v) for k, v in splits.items()},
            "group_column": options.groups() if dataset.groups is not None else None,
            "encoding": options.encoding, **dataset.notes()}


def _print_summary(estimator: TransferEstimator, summary: dict[str, Any], metrics: dict[str, Any],
                   skipped: dict[str, str], folder: Path, out: Console) -> None:
    from transferkit.commands._console import column_notes, text_notes_line
    from transferkit.ranking.strategy import duration

    if metrics:
        print_metrics(metrics, out)
    report = estimator.fit_report_
    if estimator.kind == "finetuned":
        if summary.get("lr_found"):
            out.print(f"[bold]--lr auto:[/] the learning-rate finder chose {summary['lr']:.3g} (steepest loss "
                      "descent); saved in the bundle")
        out.print(f"fine-tuned {summary['backbone']} ({summary['freeze']}) for {summary['epochs_run']} epochs in "
                  f"{summary['seconds']:.1f}s, lr {summary['lr']:.3g}, best epoch {summary['best_epoch']}, "
                  f"{summary['precision']}; logs in {folder / 'logs'}")
    elif estimator.kind == "tabular":
        for line in column_notes(summary.get("columns", {}), "training + validation: ") + column_notes(
                summary.get("test_columns", {}), "test: "):
            out.print(f"[yellow]{line}[/]", highlight=False)
        gates = report.head_choice.get("mean_gates")
        if gates:
            names = list(summary.get("columns", {}))  # block order
            out.print("gated fusion, mean gate per column: "
                      + ", ".join(f"{n}={g:.2f}" for n, g in zip(names, gates, strict=False)), highlight=False)
    else:
        choice = ", ".join(f"{k}={v}" for k, v in report.head_choice.items() if not isinstance(v, dict))
        out.print(f"features: {report.extracted} extracted, {report.cached} from cache ({report.precision} on "
                  f"{report.engine}, {report.extract_seconds:.1f}s); head: {summary['head']} ({choice}); "
                  f"{'class-weighted' if report.class_weighted else 'unweighted'}")
    for note in report.engine_notes:
        out.print(f"engine: {note}", highlight=False)
    adaptation = summary.get("adaptation")
    if adaptation and adaptation.get("shift"):
        from transferkit.commands.shift import print_shift

        print_shift(adaptation["shift"], out, heading="how far is the target? (features of the training data vs "
                                                      "--adapt-to's)")
    if adaptation:
        labels = f"; labels: {adaptation['target_labels']}" if adaptation.get("target_labels") else ""
        out.print(f"[bold]adapted to[/] {adaptation.get('target')} ({adaptation.get('target_inputs')} unlabelled "
                  f"inputs, {adaptation.get('target_skipped', 0)} unreadable skipped{labels}): "
                  f"{adaptation.get('applied')} — {adaptation.get('why')}. " + (
                      "The network trained on the labelled batches with target batches beside them (their labels "
                      "never used)" if summary.get("strategy") == "finetune" else
                      "The target's features were aligned to the training data's; the head trained on the training "
                      "data alone"), highlight=False)
    kept = summary.get("kept")
    if kept:
        out.print(f"kept the {kept['kept']}: validation accuracy {100 * kept['val_accuracy_probe']:.1f}% for the probe "
                  f"LP-FT started from, {100 * kept['val_accuracy_finetuned']:.1f}% fine-tuned "
                  f"({kept['n_val']} examples)", highlight=False)
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
        if decision.get("probe_minutes") is not None and decision.get("actual_minutes") is not None:
            gain = 100 * (compared["val_accuracy_finetuned"] - compared["val_accuracy_probe"])
            extra_minutes = decision["actual_minutes"]  # fine-tuning's own time, after the probe
            out.print(f"what the minutes bought: the probe {100 * compared['val_accuracy_probe']:.1f}% in "
                      f"{duration(decision['probe_minutes'])}; fine-tuning {gain:+.1f} points for "
                      f"{duration(extra_minutes)} more ({gain / max(extra_minutes, 1e-9):+.1f} points a minute)",
                      highlight=False)
    print_skipped(skipped, out)
    text_line = text_notes_line(summary)
    if text_line:
        out.print(text_line, highlight=False)
    rows = " ROWS.csv  (or --row '{…}')" if estimator.kind == "tabular" else " FILES…"
    exported = summary.get("export") or {}
    if exported.get("folder"):
        out.print(f"[green]exported[/] {exported['folder']} (largest probability difference against PyTorch "
                  f"{exported['max_probability_difference']:.2g} on {exported['checked_on']}): predict runs it "
                  "without PyTorch", highlight=False)
    out.print(f"[green]saved[/] {folder}  →  transferkit predict {folder}{rows}")
