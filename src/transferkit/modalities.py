"""Every modality through one CLI: choosing the modality and default backbone, table fits, predict inputs.

The CLI's `fit`, `predict` and `evaluate` stay modality-blind; they ask this module:

- `prepare_fit_options`: which modality the user's flags describe (`--text-column` alone → text,
  `--modality audio` or a folder of clips → audio, several column kinds or any numeric /
  categorical column → a multimodal table) and, when no `--backbone` was given, that modality's
  default backbone (image → efficientnet_lite0, text → all-minilm-l6-v2, audio → ge2e);
- `fit_table_and_report`: `fit` for a multimodal table (`TabularTransferClassifier`);
- `fit_notes` / `prediction_inputs` / `prediction_notes`: what text and tables add to the output
  (rows with non-UTF-8 bytes, empty texts, texts cut at the model's window, missing cells);
- `load_eval_data`: labelled data for `evaluate`, read the way the model was trained.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from transferkit.data.dataset import LabelledData
from transferkit.errors import ConfigError

#: the backbone used when the user names none, per modality
DEFAULT_BACKBONES: dict[str, str] = {"image": "efficientnet_lite0", "text": "all-minilm-l6-v2", "audio": "ge2e"}
MODALITIES = ("image", "text", "audio", "table")
#: fit options naming table columns, per column kind
COLUMN_OPTIONS: dict[str, str] = {
    "image": "image_column", "text": "text_column", "audio": "audio_column",
    "numeric": "numeric_columns", "categorical": "categorical_columns",
}


def default_backbone(modality: str) -> str:
    """The backbone for `modality` when the user gave none."""
    if modality not in DEFAULT_BACKBONES:
        raise ConfigError(f"no single default backbone for modality {modality!r}; one of "
                          f"{', '.join(DEFAULT_BACKBONES)} was expected")
    return DEFAULT_BACKBONES[modality]


def split_columns(value: str | Sequence[str] | None) -> list[str]:
    """'price, weight' → ['price', 'weight']; a list is flattened the same way."""
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else list(value)
    return [c.strip() for part in parts for c in str(part).split(",") if c.strip()]


def guess_folder_modality(folder: Path, limit: int = 500) -> str:
    """'audio' when a class folder tree holds more audio files than images, else 'image'."""
    from transferkit.data.audio import AUDIO_EXTENSIONS
    from transferkit.data.images import IMAGE_EXTENSIONS

    images = audio = 0
    for i, f in enumerate(folder.rglob("*")):
        if i >= limit:
            break
        suffix = f.suffix.lower()
        images += suffix in IMAGE_EXTENSIONS
        audio += suffix in AUDIO_EXTENSIONS
    return "audio" if audio > images else "image"


def prepare_fit_options(options: dict[str, Any]) -> dict[str, Any]:
    """`fit` options with `modality` resolved, the default backbone filled in, and `path_column` set.

    Column flags decide first: one text/image/audio column alone is that modality (its column is
    the manifest's path column); several kinds, or numeric/categorical columns, are a table. Then
    `--modality`; then the data: a folder of mostly audio files is audio, anything else image.
    """
    out = dict(options)
    columns = {kind: split_columns(out.get(opt)) for kind, opt in COLUMN_OPTIONS.items()}
    given = [kind for kind, cols in columns.items() if cols]
    asked = out.get("modality") or None
    if asked is not None and asked not in MODALITIES:
        raise ConfigError(f"--modality must be one of {', '.join(MODALITIES)}; got {asked!r}")
    single = len(given) == 1 and given[0] in DEFAULT_BACKBONES and len(columns[given[0]]) == 1
    if given and not single:
        modality = "table"
    elif single:
        modality = given[0]
        out["path_column"] = columns[modality][0]
    elif asked is not None:
        modality = asked
    else:
        data = Path(str(out.get("data", "")))
        modality = guess_folder_modality(data) if data.is_dir() else "image"
    if asked is not None and asked != modality:
        raise ConfigError(f"--modality {asked} does not match the columns given ({', '.join(given)} → {modality}); "
                          "drop --modality or the column flags")
    if modality == "table" and out.get("strategy", "probe") == "finetune":
        raise ConfigError("a multimodal table trains on frozen encoders: use the default --strategy probe, "
                          "with --fusion concat (default) or --fusion gated (learned per-column gates)")
    out["modality"] = modality
    out["table_columns"] = columns
    if not out.get("backbone") and modality != "table":
        out["backbone"] = default_backbone(modality)
    return out


# -- text notes ----------------------------------------------------------------------------------


def count_truncated(backbone: Any, texts: list[str]) -> int:
    """How many of `texts` the text backbone cuts at its window (or its chunk budget)."""
    from transferkit.tabular import _count_truncated

    return _count_truncated(backbone, texts) if hasattr(backbone, "token_lengths") and texts else 0


def fit_notes(dataset: LabelledData, clf: Any) -> dict[str, Any]:
    """Counts to add to `fit`'s summary for text data: non-UTF-8 rows, empty texts, truncated texts."""
    from transferkit.data.text import TextData

    backbone = getattr(clf, "backbone_", None)
    if backbone is None or getattr(backbone, "modality", None) != "text":
        return {}
    notes: dict[str, Any] = dataset.notes() if isinstance(dataset, TextData) else {}
    notes["long_text"] = getattr(backbone, "long_text", "truncate")
    notes["max_tokens"] = getattr(backbone, "max_seq_length", None)
    notes["truncated_texts"] = count_truncated(backbone, [str(t) for t in dataset.items])
    return notes


def print_fit_notes(notes: dict[str, Any], console: Console) -> None:
    """One line for the user about text repairs and truncation (nothing when there is nothing)."""
    if not notes:
        return
    parts = []
    if notes.get("non_utf8_rows"):
        parts.append(f"{notes['non_utf8_rows']} row(s) had bytes that are not UTF-8 (replaced by '\ufffd')")
    if notes.get("empty_texts"):
        parts.append(f"{notes['empty_texts']} empty text(s) left out")
    if notes.get("long_text") == "chunk":
        parts.append(f"long texts split into {notes.get('max_tokens')}-token chunks and pooled"
                     + (f"; {notes['truncated_texts']} exceeded the chunk budget and were cut"
                        if notes.get("truncated_texts") else ""))
    else:
        parts.append(f"{notes.get('truncated_texts', 0)} text(s) longer than {notes.get('max_tokens')} tokens "
                     "were truncated" + (" (use --long-text chunk to pool over chunks)"
                                         if notes.get("truncated_texts") else ""))
    console.print("text: " + "; ".join(parts), highlight=False)


# -- table fit -----------------------------------------------------------------------------------


def parse_table_backbones(value: str | None) -> dict[str, str]:
    """'--backbone text=minilm,image=efficientnet_lite2' → per-kind backbones for a table model."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in split_columns(value):
        kind, sep, name = part.partition("=")
        if not sep or kind.strip() not in DEFAULT_BACKBONES:
            raise ConfigError(f"for a table, --backbone takes KIND=NAME pairs such as "
                              f"'text=all-minilm-l6-v2,image=efficientnet_lite0'; got {value!r}")
        out[kind.strip()] = name.strip()
    return out


def fit_table_and_report(options: dict[str, Any], console: Console) -> dict[str, Any]:
    """`transferkit fit` for a multimodal table: load rows, split, encode each column, fuse, evaluate, save."""
    from transferkit.bundle import check_writable
    from transferkit.data.rows import load_table_rows
    from transferkit.data.split import split_indices
    from transferkit.evaluate import metrics_tables
    from transferkit.tabular import PATH_KINDS, TabularTransferClassifier
    from transferkit.workflow import default_out, print_class_counts

    data = Path(options["data"])
    out = Path(options["out"]) if options.get("out") else default_out(data)
    overwrite = bool(options.get("overwrite"))
    check_writable(out, overwrite=overwrite)
    columns: dict[str, list[str]] = options["table_columns"]
    ordered = [c for kind in COLUMN_OPTIONS for c in columns.get(kind, [])]
    dataset, report = load_table_rows(
        data, columns=ordered, path_columns=[c for k in PATH_KINDS for c in columns.get(k, [])],
        label_column=options["label_column"],
    )
    dataset.validate_for_training()
    seed = int(options["seed"])
    splits = split_indices(dataset.labels, val_fraction=options["val"], test_fraction=options["test"], seed=seed,
                           splits=dataset.splits)
    quiet = bool(options.get("as_json"))
    if not quiet:
        print_class_counts(dataset, splits, console)
        message = report.encoding_message()
        if message:
            console.print(f"[yellow]{message}[/]", highlight=False)
    backbones: dict[str, Any] = parse_table_backbones(options.get("backbone"))
    clf = TabularTransferClassifier(
        image_columns=columns.get("image", []), text_columns=columns.get("text", []),
        audio_columns=columns.get("audio", []), numeric_columns=columns.get("numeric", []),
        categorical_columns=columns.get("categorical", []),
        **{f"{kind}_backbone": name for kind, name in backbones.items()},
        head=options.get("head") or "linear", fusion=options.get("fusion") or "concat",
        class_weight=options.get("class_weight", "auto"), seed=seed, batch_size=int(options.get("batch_size", 64)),
        precision=options.get("precision", "auto"), long_text=options.get("long_text") or "truncate",
        cache_dir=options.get("cache_dir"), progress=not quiet,
    )
    train, valid = dataset.subset(splits["train"]), dataset.subset(splits["val"])
    clf.fit(train, X_val=valid if len(valid) else None, y_val=valid.labels if len(valid) else None)
    metrics: dict[str, Any] = {}
    if splits.get("test"):
        metrics = clf.evaluate(dataset.subset(splits["test"]))
    clf.save(out, metrics=metrics, overwrite=overwrite, extra={"data": {
        "source": str(data), "splits": {k: len(v) for k, v in splits.items()}, "modality": "table",
        "label_column": options["label_column"], "non_utf8_rows": report.replaced_rows}})
    fit_columns = clf.fit_report_.columns
    summary = {
        "out": str(out), "modality": "table", "fusion": clf.fusion, "head": clf.head,
        "encoders": {k: b.name for k, b in clf.backbones_.items()},
        "n_train": clf.fit_report_.n_train, "n_val": clf.fit_report_.n_val, "n_test": metrics.get("n", 0),
        "accuracy": metrics.get("accuracy"), "balanced_accuracy": metrics.get("balanced_accuracy"),
        "macro_f1": metrics.get("macro_f1"), "columns": fit_columns, "test_columns": metrics.get("columns", {}),
        "non_utf8_rows": report.replaced_rows, "extracted": clf.fit_report_.extracted,
        "cached": clf.fit_report_.cached, "head_choice": clf.fit_report_.head_choice,
    }
    if quiet:
        print(json.dumps(summary, indent=2, default=str))
        return summary
    for table in metrics_tables(metrics, title="test"):
        console.print(table)
    print_column_report(fit_columns, console, "training + validation")
    if metrics.get("columns"):
        print_column_report(metrics["columns"], console, "test")
    gates = clf.fit_report_.head_choice.get("mean_gates")
    if gates:
        names = [c for _, c in clf.columns()]
        console.print("gated fusion, mean gate per column: "
                      + ", ".join(f"{n}={g:.2f}" for n, g in zip(names, gates, strict=True)), highlight=False)
    console.print(f"[green]saved[/] {out}  →  transferkit predict {out} ROWS.csv  (or --row '{{…}}')")
    return summary


def print_column_report(columns: dict[str, dict[str, Any]], console: Console, where: str) -> None:
    """Per column: missing cells, unreadable files, unseen categories, truncated texts (only if any)."""
    for name, rep in columns.items():
        counts = {k: v for k, v in rep.items() if k != "examples" and v}
        if not counts:
            continue
        what = ", ".join(f"{v} {k}" for k, v in counts.items())
        console.print(f"[yellow]{where}: column '{name}': {what}[/] (zero embedding + missing mask)",
                      highlight=False)
        for example in rep.get("examples", [])[:3]:
            console.print(f"  - {example}", highlight=False)


# -- predict and evaluate ------------------------------------------------------------------------


def model_modality(clf: Any) -> str:
    """'table', or the modality of the model's backbone ('image' when it cannot tell)."""
    if getattr(clf, "modality_", None) == "table":
        return "table"
    backbone = getattr(clf, "backbone_", None) or getattr(clf, "backbone", None)
    modality = getattr(backbone, "modality", None)
    return modality if modality in MODALITIES else "image"


def _saved_column(clf: Any, default: str) -> str:
    manifest = getattr(clf, "manifest_", None) or {}
    return str(manifest.get("data", {}).get("path_column") or default)


def prediction_inputs(clf: Any, inputs: Sequence[str], *, rows: Sequence[str] = (), text_column: str | None = None
                      ) -> tuple[list[Any], list[str], list[str]]:
    """What `predict` feeds the model, a display name per input, and notes for the user.

    Images and audio: files, folders expanded to the files of that modality. Text: literal
    strings, text files (one example per line) or tables (the training text column unless
    `text_column`). Tables: table files of rows and `--row` JSON objects.
    """
    from transferkit.workflow import expand_inputs

    modality = model_modality(clf)
    if not inputs and not rows:
        raise ConfigError("nothing to predict: give files, folders or (text models) sentences, or (table models) "
                          "a table of rows or --row '{\"column\": value, …}'")
    if rows and modality != "table":
        raise ConfigError("--row is for table models; this model takes "
                          f"{modality} inputs given as arguments")
    if modality == "table":
        from transferkit.data.rows import read_rows

        items, names = read_rows(inputs, rows, columns=[c for _, c in clf.columns()], path_columns=clf.path_columns())
        return list(items), names, []
    if modality == "text":
        from transferkit.data.text import read_text_inputs

        got = read_text_inputs(inputs, text_column=text_column or _saved_column(clf, "text"))
        notes = []
        if got.non_utf8:
            notes.append(f"{got.non_utf8} input text(s) had bytes that are not UTF-8 (replaced by '\ufffd')")
        if got.empty:
            notes.append(f"{got.empty} empty text(s): their predictions carry no information from the input")
        return list(got.texts), got.names, notes
    if modality == "audio":
        from transferkit.data.audio import AUDIO_EXTENSIONS

        clips = expand_inputs(inputs, AUDIO_EXTENSIONS)
        return list(clips), list(clips), []
    from transferkit.data.images import IMAGE_EXTENSIONS

    images = expand_inputs(inputs, IMAGE_EXTENSIONS)
    return list(images), list(images), []


def prediction_notes(clf: Any, items: Sequence[Any]) -> list[str]:
    """Notes after extraction: texts cut at the model's window, table cells missing or unreadable."""
    modality = model_modality(clf)
    notes: list[str] = []
    if modality == "text":
        backbone = clf.backbone_
        n = count_truncated(backbone, [str(t) for t in items])
        if getattr(backbone, "long_text", "truncate") == "chunk":
            notes.append(f"long texts pooled over {backbone.max_seq_length}-token chunks"
                         + (f"; {n} exceeded the chunk budget and were cut" if n else ""))
        elif n:
            notes.append(f"{n} text(s) longer than {backbone.max_seq_length} tokens were truncated "
                         "(the model only read their beginning)")
    elif modality == "table":
        for name, rep in (getattr(clf, "last_columns_", None) or {}).items():
            counts = {k: v for k, v in rep.items() if k != "examples" and v}
            if counts:
                notes.append(f"column '{name}': " + ", ".join(f"{v} {k}" for k, v in counts.items())
                             + " (zero embedding + missing mask)"
                             + ("; e.g. " + rep["examples"][0] if rep.get("examples") else ""))
    return notes


def load_eval_data(clf: Any, data: Path, *, path_column: str, label_column: str) -> LabelledData:
    """Labelled data for `evaluate`, read as the model's modality needs (text column, table rows…)."""
    from transferkit.data import load_dataset

    modality = model_modality(clf)
    if modality == "table":
        from transferkit.data.rows import load_table_rows

        manifest = getattr(clf, "manifest_", None) or {}
        saved_label = manifest.get("data", {}).get("label_column", "label")
        dataset, _ = load_table_rows(data, columns=[c for _, c in clf.columns()], path_columns=clf.path_columns(),
                                     label_column=label_column if label_column != "label" else saved_label)
        return dataset
    if modality == "text":
        from transferkit.data.text import load_text_table

        column = path_column if path_column != "path" else _saved_column(clf, "text")
        return load_text_table(data, text_column=column, label_column=label_column)
    return load_dataset(data, modality=modality, path_column=path_column, label_column=label_column)
