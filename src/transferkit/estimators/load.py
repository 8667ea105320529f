"""`transferkit.load(path)`: any saved bundle, as the estimator that reads it.

The dispatch reads one manifest key, `estimator` (older bundles are mapped by `estimator_kind`),
and only the manifest: the tensors are read once, by the estimator's own `load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferkit.errors import BundleError
from transferkit.estimators.transfer_estimator import TransferEstimator, estimator_kind


def estimator_class(kind: str) -> type[TransferEstimator]:
    """The class that reads bundles of `kind` ('probe', 'tabular', 'finetuned')."""
    if kind == "probe":
        from transferkit.estimators.probe import TransferClassifier

        return TransferClassifier
    if kind == "tabular":
        from transferkit.estimators.tabular import TabularTransferClassifier

        return TabularTransferClassifier
    if kind == "ensemble":
        from transferkit.estimators.ensemble import EnsembleClassifier

        return EnsembleClassifier
    if kind == "finetuned":
        from transferkit.estimators.finetuned import FinetunedClassifier

        return FinetunedClassifier
    raise BundleError(f"unknown kind of model {kind!r} in the bundle; upgrade transferkit to load it")


def load(path: str | Path, **overrides: Any) -> TransferEstimator:
    """A saved bundle of any kind (probe, fine-tuned, table), fitted and ready to predict.

    `overrides` set how it runs (`cache_dir`, `progress`, `device`, `batch_size`), never what it learned.
    """
    from transferkit.bundle import read_manifest

    return estimator_class(estimator_kind(read_manifest(path))).load(path, **overrides)
