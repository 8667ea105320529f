"""The labelled data a report is computed on: the data the user gives, or the run's own test split.

`test_split(manifest)` re-derives the test split of a run from what its bundle recorded (data
source, modality, columns, seed and split fractions), loading the data exactly as `fit` did and
splitting it with the same `split_indices`. It checks the split it gets against the split sizes
the bundle recorded, so a moved, edited or re-ordered dataset gives a clear error rather than a
report computed on the wrong examples. This function is the one place to change when the
pipeline records the split itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transferkit.data.dataset import LabelledData
from transferkit.errors import DataError
from transferkit.jsontypes import JSONObject

#: the split fractions `fit` uses when the user gives none
DEFAULT_VAL, DEFAULT_TEST = 0.15, 0.15


@dataclass
class ReportData:
    """The data a report evaluates, where it came from, and the class counts of every split known."""

    data: LabelledData
    #: what the data is, in words ("test split of data/photos (re-derived from the bundle)")
    description: str
    #: split name → class → count; the evaluated data is always one of the entries
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: inputs left out while reading the data (path → reason)
    skipped: dict[str, str] = field(default_factory=dict)
    #: things the report had to assume or could not find, shown to the user
    notes: list[str] = field(default_factory=list)


def model_modality(manifest: JSONObject) -> str:
    """What the bundle's model takes: 'image', 'text', 'audio' or 'table'."""
    if manifest.get("modality"):
        return str(manifest["modality"])
    if manifest.get("kind") == "tabular":  # bundles written before the manifest said it
        return "table"
    return str(manifest.get("backbone", {}).get("modality") or "image")


def _columns(manifest: JSONObject) -> tuple[str, str]:
    """(path/text column, label column) the bundle was trained with."""
    data = manifest.get("data", {})
    modality = model_modality(manifest)
    default_path = "text" if modality == "text" else "path"
    return str(data.get("path_column") or default_path), str(data.get("label_column") or "label")


def _fractions(manifest: JSONObject, run_dir: Path | None, total: int) -> tuple[float, float, str | None]:
    """(val, test) fractions of the run and, when they were not recorded, a note saying how they were found.

    Without recorded fractions, the recorded split sizes give them: `split_indices` sizes a split
    `round(fraction × total)`, so `size / total` reproduces the same split of the same data.
    """
    data = manifest.get("data", {})
    if "val" in data and "test" in data:  # what `fit` records
        return float(data["val"]), float(data["test"]), None
    if run_dir is not None:  # a fine-tuning run folder keeps its options in run.json
        run_file = Path(run_dir) / "run.json"
        if run_file.is_file():
            try:
                options = json.loads(run_file.read_text(encoding="utf-8")).get("options", {})
            except (OSError, json.JSONDecodeError):
                options = {}
            if "val" in options and "test" in options:
                return float(options["val"]), float(options["test"]), None
    sizes = data.get("splits") or {}
    if total and "val" in sizes and "test" in sizes:
        return int(sizes["val"]) / total, int(sizes["test"]) / total, None
    return DEFAULT_VAL, DEFAULT_TEST, (
        f"the bundle records neither its split fractions nor its split sizes; assumed fit's defaults "
        f"(val {DEFAULT_VAL}, test {DEFAULT_TEST})")


def load_labelled(manifest: JSONObject, source: str | Path, *, path_column: str | None = None,
                  label_column: str | None = None, group_column: str | None = None) -> LabelledData:
    """Labelled data read as the bundle's modality needs (image/audio folders or manifests, text
    tables, multimodal rows), with the bundle's own columns unless others are given."""
    from transferkit.data import load_labelled as read

    saved_path, saved_label = _columns(manifest)
    layout = manifest.get("columns", [])  # a table model's columns, in block order
    dataset, _ = read(source, modality=model_modality(manifest), path_column=path_column or saved_path,
                      label_column=label_column or saved_label, columns=[str(c["name"]) for c in layout],
                      path_columns=[str(c["name"]) for c in layout if c.get("kind") in ("image", "audio")],
                      encoding=(manifest.get("data") or {}).get("encoding"), group_column=group_column)
    return dataset


def test_split(manifest: JSONObject, run_dir: str | Path | None = None) -> ReportData:
    """The run's test split, re-derived from its bundle's record of the data and the split.

    Raises `DataError` saying what to do when the data is gone, or when the split re-derived does
    not have the sizes the bundle recorded (the data changed since `fit`).
    """
    from transferkit.data.split import split_indices

    data_info = manifest.get("data") or {}
    source = data_info.get("source")
    if not source:
        raise DataError("the bundle does not record the data it was trained on; give the data to report on: "
                        "transferkit report RUN DATA")
    if not Path(source).exists():
        raise DataError(f"the bundle was trained on '{source}', which is not there now (paths are relative to the "
                        "folder fit ran in); run from that folder, or give the data: transferkit report RUN DATA")
    dataset = load_labelled(manifest, source, group_column=data_info.get("group_column"))
    val, test, note = _fractions(manifest, Path(run_dir) if run_dir is not None else None, len(dataset))
    seed = int(data_info.get("seed", manifest.get("training", {}).get("seed", 0)))
    splits = split_indices(dataset.labels, val_fraction=val, test_fraction=test, seed=seed, splits=dataset.splits,
                           groups=dataset.groups)
    recorded = data_info.get("splits") or {}
    got = {name: len(idx) for name, idx in splits.items()}
    differs = {k: (int(v), got.get(k, 0)) for k, v in recorded.items() if int(v) != got.get(k, 0)}
    if differs:
        what = ", ".join(f"{k}: {then} then, {now} now" for k, (then, now) in differs.items())
        raise DataError(f"'{source}' no longer splits as it did at fit time ({what}): the data changed since. "
                        "Give the data to report on: transferkit report RUN DATA")
    if not splits.get("test"):
        raise DataError(f"the run trained on '{source}' kept no test split (--test 0); give labelled data to "
                        "report on: transferkit report RUN DATA")
    counts = {name: _counts(dataset, idx) for name, idx in splits.items() if idx}
    test_data = dataset.subset(splits["test"])
    return ReportData(data=test_data, description=f"test split of {source} (re-derived from the bundle, seed {seed})",
                      class_counts=counts, skipped=dict(dataset.skipped), notes=[note] if note else [])


def given_data(manifest: JSONObject, source: str | Path, *, path_column: str | None = None,
               label_column: str | None = None) -> ReportData:
    """Data the user names (`report RUN DATA`, `evaluate --report`), all of it evaluated."""
    dataset = load_labelled(manifest, source, path_column=path_column, label_column=label_column)
    return from_labelled(manifest, dataset, description=f"{source} (all {len(dataset)} examples)")


def from_labelled(manifest: JSONObject, data: LabelledData, *, description: str) -> ReportData:
    """Labelled data already in memory; the training counts come from the bundle."""
    counts: dict[str, dict[str, int]] = {}
    train_counts = manifest.get("training", {}).get("class_counts")
    if train_counts:
        counts["train"] = {str(k): int(v) for k, v in train_counts.items()}
    counts["evaluated"] = data.class_counts()
    return ReportData(data=data, description=description, class_counts=counts, skipped=dict(data.skipped))


def _counts(dataset: LabelledData, indices: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in indices:
        out[dataset.labels[i]] = out.get(dataset.labels[i], 0) + 1
    return dict(sorted(out.items()))
