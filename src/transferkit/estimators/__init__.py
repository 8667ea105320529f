"""The estimators: every transferkit model, on one scikit-learn style contract (`base`).

- `probe.TransferClassifier`: feature transfer (frozen backbone, head on cached features);
- `tabular.TabularTransferClassifier`: tables mixing images, text, audio, numbers and categories;
- `ensemble.EnsembleClassifier`: probes on several backbones, probabilities averaged;
- `finetuned.FinetunedClassifier`: parameter transfer (a facade over `transferkit.finetune`);
- `load.load`: any bundle, dispatched on its manifest.

Submodules are imported on first use (fine-tuning pulls in Lightning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["EnsembleClassifier", "FinetunedClassifier", "TabularTransferClassifier", "TransferClassifier",
           "TransferEstimator", "load"]

_LAZY = {
    "TransferEstimator": "transferkit.estimators.transfer_estimator",
    "TransferClassifier": "transferkit.estimators.probe",
    "TabularTransferClassifier": "transferkit.estimators.tabular",
    "FinetunedClassifier": "transferkit.estimators.finetuned",
    "EnsembleClassifier": "transferkit.estimators.ensemble",
    "load": "transferkit.estimators.load",
}

if TYPE_CHECKING:
    from transferkit.estimators.ensemble import EnsembleClassifier
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.estimators.load import load
    from transferkit.estimators.probe import TransferClassifier
    from transferkit.estimators.tabular import TabularTransferClassifier
    from transferkit.estimators.transfer_estimator import TransferEstimator


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transferkit.estimators' has no attribute '{name}'")
