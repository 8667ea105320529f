"""transferkit: transfer learning for your own labelled images, text, audio and tables.

    from transferkit import TransferClassifier
    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)

Heavy modules (torch, timm…) are imported on first use, so `import transferkit` stays fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# transferkit works offline and sends nothing anywhere; onnxruntime (1.32, Linux) would otherwise start a thread
# with each process's first session that records usage events in ~/.cache/Microsoft and tries to upload them. Read
# by onnxruntime when it is imported, so set here; a value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

__all__ = [
    "FinetuneConfig",
    "FinetunedClassifier",
    "TabularTransferClassifier",
    "TransferClassifier",
    "TransferkitError",
    "create_backbone",
    "curve",
    "list_backbones",
    "load",
    "rank",
    "register_backbone",
]

#: public name → (module, attribute), imported on first use
_LAZY = {
    "FinetunedClassifier": ("transferkit.estimators.finetuned", "FinetunedClassifier"),
    "FinetuneConfig": ("transferkit.finetune.config", "FinetuneConfig"),
    "TabularTransferClassifier": ("transferkit.estimators.tabular", "TabularTransferClassifier"),
    "TransferClassifier": ("transferkit.estimators.probe", "TransferClassifier"),
    "TransferkitError": ("transferkit.errors", "TransferkitError"),
    "create_backbone": ("transferkit.backbones", "create_backbone"),
    "curve": ("transferkit.curves", "curve"),
    "list_backbones": ("transferkit.backbones", "list_backbones"),
    "load": ("transferkit.estimators.load", "load"),
    "rank": ("transferkit.ranking.rank_backbones", "rank"),
    "register_backbone": ("transferkit.backbones", "register_backbone"),
}

if TYPE_CHECKING:
    from transferkit.backbones import create_backbone, list_backbones, register_backbone
    from transferkit.curves import curve
    from transferkit.errors import TransferkitError
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.estimators.load import load
    from transferkit.estimators.probe import TransferClassifier
    from transferkit.estimators.tabular import TabularTransferClassifier
    from transferkit.finetune.config import FinetuneConfig
    from transferkit.ranking.rank_backbones import rank


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transferkit' has no attribute '{name}'")
