"""`transferkit fit --strategy finetune`: resolve options, split, fine-tune, evaluate, save.

Kept here (not in cli.py) so the CLI stays thin and the flow is testable as code. The run folder
is the `--out` folder: checkpoints and logs land there during training, the bundle at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from transferkit.errors import BundleError, ConfigError
from transferkit.finetune.config import FinetuneConfig

#: settings a resumed run may change; everything else must match the run as it was started.
RESUMABLE_OVERRIDES = frozenset({"epochs", "devices", "accelerator", "num_workers", "progress", "as_json"})
#: `fit` option name → FinetuneConfig field, where they differ.
_RENAMES = {"class_weight": "class_balance"}
_CLASS_WEIGHT = {"auto": "auto", "balanced": "weights", "none": "none"}


def parse_lr(value: Any) -> float | str:
    if value is None or value == "auto":
        return "auto" if value == "auto" else 1e-3
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--lr must be a number such as 1e-3, or 'auto'; got {value!r}") from None


def config_from_options(options: dict[str, Any]) -> FinetuneConfig:
    """A validated `FinetuneConfig` from merged `fit` options (unset ones keep their defaults)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key == "class_weight" and "class_balance" not in options:
            values["class_balance"] = _CLASS_WEIGHT.get(value, value)
        elif key in fields:
            values[key] = value
    if "lr" in values:
        values["lr"] = parse_lr(values["lr"])
    if isinstance(values.get("devices"), str) and values["devices"].isdigit():
        values["devices"] = int(values["devices"])
    return FinetuneConfig(**values).validate()


def _check_out(out: Path, overwrite: bool) -> None:
    from transferkit.bundle import check_writable, is_bundle
    from transferkit.finetune.checkpoint import RUN_FILE

    if (out / RUN_FILE).is_file() and not is_bundle(out) and not overwrite:
        raise BundleError(
            f"--out '{out}' holds an unfinished fine-tuning run; continue it with "
            f"--resume {out}, pass --overwrite to start over, or choose another folder"
        )
    if (out / RUN_FILE).is_file() and overwrite:
        for name in ("checkpoints", "logs"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / RUN_FILE).unlink()
        if not is_bundle(out):
            return
    check_writable(out, overwrite=overwrite)


def finetune_and_report(options: dict[str, Any], explicit: set[str], console: Console) -> dict[str, Any]:
    """Run `fit --strategy finetune` from merged options; returns the summary printed."""
    from transferkit.data import load_dataset
    from transferkit.data.split import split_indices
    from transferkit.evaluate import metrics_tables
    from transferkit.finetune.checkpoint import check_same_run, data_fingerprint, read_run, write_run
    from transferkit.finetune.engine import FinetunedClassifier, is_rank_zero
    from transferkit.workflow import default_out, print_class_counts, print_skipped

    data = Path(options["data"])
    resume = options.get("resume")
    as_json = bool(options.get("as_json"))
    rank0 = is_rank_zero()
    if resume:
        out = Path(resume)
        run = read_run(out)
        saved = dict(run["options"])
        for key in sorted(explicit - RESUMABLE_OVERRIDES - {"resume", "data", "out", "config", "strategy"}):
            if key in options and options[key] != saved.get(key):
                if key in ("backbone", "weights"):
                    raise ConfigError(
                        f"--resume '{out}' was trained with {key} '{saved.get(key)}', not "
                        f"'{options[key]}'; refusing to continue it with another backbone"
                    )
                raise ConfigError(
                    f"--resume '{out}' continues the run as it was started; --{key.replace('_', '-')} "
                    f"differs ({saved.get(key)!r} then, {options[key]!r} now). Drop the flag, "
                    "or start a new run"
                )
        merged = {**saved, **{k: options[k] for k in explicit & RESUMABLE_OVERRIDES if k in options}}
    else:
        out = Path(options.get("out") or default_out(data))
        if rank0:
            _check_out(out, bool(options.get("overwrite")))
        merged = dict(options)
    cfg = config_from_options({**merged, "progress": not as_json and merged.get("progress", True)})

    dataset = load_dataset(
        data,
        modality=merged.get("modality") or "image",
        path_column=merged.get("path_column", "path"),
        label_column=merged.get("label_column", "label"),
    )
    dataset.validate_for_training()
    splits = split_indices(
        dataset.labels,
        val_fraction=float(merged.get("val", 0.15)),
        test_fraction=float(merged.get("test", 0.15)),
        seed=cfg.seed,
        splits=dataset.splits,
    )
    train, valid, test = (dataset.subset(splits.get(s, [])) for s in ("train", "val", "test"))
    train.source = dataset.source
    fingerprint = data_fingerprint([str(i) for i in train.items], train.labels)
    if resume:
        check_same_run(out, run, backbone=run["backbone"], data=fingerprint)  # data first: cheap
    if not as_json and rank0:
        print_class_counts(dataset, splits, console)

    clf = FinetunedClassifier(cfg, progress=not as_json)

    def record_backbone(reference: dict[str, Any]) -> None:
        """A new run records what it trains; a resumed one checks it is the same backbone."""
        if resume:
            check_same_run(out, run, backbone=reference, data=fingerprint)
        elif rank0:
            write_run(
                out,
                {
                    "status": "running",
                    "data_source": str(data),
                    "data_fingerprint": fingerprint,
                    "n_train": len(train),
                    "config": cfg.to_dict(),
                    "backbone": reference,
                    "options": _jsonable({**merged, "data": str(data), "out": str(out)}),
                },
            )

    clf.fit(
        train,
        X_val=valid.items if len(valid) else None,
        y_val=valid.labels if len(valid) else None,
        run_dir=out,
        resume=bool(resume),
        on_backbone=record_backbone,
    )
    if not rank0:
        return {}
    report = clf.fit_report_
    if report.lr_found and not as_json:
        console.print(
            f"[bold]--lr auto:[/] the learning-rate finder chose {report.lr:.3g} "
            f"(steepest loss descent over {cfg.lr_find_steps} steps); saved in the bundle"
        )
    metrics: dict[str, Any] = clf.evaluate(test) if len(test) else {}
    skipped = {**dataset.skipped, **metrics.get("skipped", {})}
    clf.save(
        out,
        metrics={**metrics, "skipped": skipped},
        overwrite=True,
        extra={"data": {"source": str(data), "splits": {k: len(v) for k, v in splits.items()}}},
    )
    run = read_run(out)
    write_run(out, {**{k: v for k, v in run.items() if k != "kind"}, "status": "done"})
    summary = {
        "out": str(out),
        "strategy": "finetune",
        "backbone": cfg.backbone,
        "head": cfg.head,
        "freeze": "peft:" + cfg.peft if cfg.peft else cfg.freeze,
        "epochs_run": report.epochs_run,
        "best_epoch": report.best_epoch,
        "lr": report.lr,
        "lr_found": report.lr_found,
        "n_train": report.n_train,
        "n_val": report.n_val,
        "n_test": metrics.get("n", 0),
        "accuracy": metrics.get("accuracy"),
        "balanced_accuracy": metrics.get("balanced_accuracy"),
        "macro_f1": metrics.get("macro_f1"),
        "precision": report.precision,
        "seconds": round(report.seconds, 2),
        "trainable_by_epoch": report.trainable_by_epoch,
        "processes": report.world_size,
    }
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return summary
    if metrics:
        for table in metrics_tables(metrics, title="test"):
            console.print(table)
    console.print(
        f"fine-tuned {cfg.backbone} ({summary['freeze']}) for {report.epochs_run} epochs in "
        f"{report.seconds:.1f}s, lr {report.lr:.3g}, best epoch {report.best_epoch}, {report.precision}; "
        f"logs in {out / 'logs'}"
    )
    print_skipped(skipped, console)
    console.print(f"[green]saved[/] {out}  →  transferkit predict {out} FILES…")
    return summary


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}
