"""The in-memory description of a labelled dataset: raw inputs, labels, and an optional split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from transferkit.errors import DataError

SPLITS = ("train", "val", "test")

#: the names accepted for each split, as folder names or `split`-column values (case-insensitive)
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def canonical_split(name: str) -> str | None:
    """'Validation', ' valid ' → 'val'; None for a name that is not a split."""
    return SPLIT_ALIASES.get(name.strip().lower())


@dataclass
class LabelledData:
    """Raw inputs and their labels, as found on disk (nothing decoded yet).

    `items` are what a backbone's `load` takes: file paths (str) for images and audio, strings for
    text, dicts of column → value for multimodal tables. `splits`, when the user already split the
    data (`root/{train,val,test}/<class>/…`, or a `split` column), names each item's split.
    """

    items: list[Any]
    labels: list[str]
    source: str
    modality: str = "image"
    splits: list[str] | None = None
    #: each item's group (speaker, site, device, design), when the data names them: held-out
    #: splits are then made of whole groups (`split_indices(groups=…)`)
    groups: list[str] | None = None
    #: inputs dropped while scanning (e.g. files of an unknown type), path → reason
    skipped: dict[str, str] = field(default_factory=dict)
    #: for skipped inputs whose class is known (a file in a class folder): path → that class
    skipped_labels: dict[str, str] = field(default_factory=dict)
    #: inputs kept in `items` that a cheap look at their first bytes says cannot be read
    #: (path → reason); reading them is where they are skipped and counted
    unreadable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.items) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.items)} inputs but {len(self.labels)} labels")
        if self.splits is not None and len(self.splits) != len(self.items):
            raise DataError(f"{self.source}: split column has the wrong length")
        if self.groups is not None and len(self.groups) != len(self.items):
            raise DataError(f"{self.source}: group column has the wrong length")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {c: counts[c] for c in self.classes}

    def notes(self) -> dict[str, int]:
        """Counts a user should see after loading (repaired bytes, empty rows left out); none here."""
        return {}

    def subset(self, indices: list[int]) -> LabelledData:
        items = [self.items[i] for i in indices]
        flagged = {item: self.unreadable[item] for item in items if isinstance(item, str) and item in self.unreadable}
        return LabelledData(
            items=items,
            labels=[self.labels[i] for i in indices],
            source=self.source,
            modality=self.modality,
            splits=None if self.splits is None else [self.splits[i] for i in indices],
            groups=None if self.groups is None else [self.groups[i] for i in indices],
            unreadable=flagged,
        )

    def validate_for_training(self) -> None:
        """At least 2 classes, and at least 2 examples of each that can be read; otherwise a clear error.

        Inputs a cheap look found unreadable (`unreadable`) do not count: a class of only those
        would vanish from the model once reading them fails.
        """
        if len(self.items) == 0:
            raise DataError(f"{self.source}: no inputs found")
        counts = self.class_counts()
        if len(counts) < 2:
            only = next(iter(counts))
            raise DataError(
                f"{self.source}: only one class ('{only}') found; a classifier needs at least 2 classes"
            )
        if self.unreadable:
            for item, label in zip(self.items, self.labels, strict=True):
                if isinstance(item, str) and item in self.unreadable:
                    counts[label] -= 1
        small = {c: n for c, n in counts.items() if n < 2}
        if small:
            listed = ", ".join(f"'{c}' ({n}{self._skipped_note(c)})" for c, n in small.items())
            raise DataError(
                f"{self.source}: every class needs at least 2 examples; too few in {listed}. "
                "Add examples or remove those classes."
            )

    def _skipped_note(self, label: str) -> str:
        """What else is known about a short class: its inputs that look unreadable, or were skipped."""
        notes = []
        bad = [item for item, lab in zip(self.items, self.labels, strict=True)
               if lab == label and isinstance(item, str) and item in self.unreadable]
        if bad:
            notes.append(f"{len(bad)} of them cannot be read, e.g. {bad[0]}: {self.unreadable[bad[0]]}")
        paths = [path for path, lab in self.skipped_labels.items() if lab == label and path in self.skipped]
        if paths:
            notes.append(f"{len(paths)} more skipped, e.g. {paths[0]}: {self.skipped[paths[0]]}")
        return "".join(f"; {note}" for note in notes)
