"""transferkit: transfer learning for your own labelled images, text, audio and tables.

    from transferkit import TransferClassifier
    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)

Heavy modules (torch, timm…) are imported on first use, so `import transferkit` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# transferkit works offline and sends nothing anywhere; onnxruntime (1.32, Linux) would otherwise start a thread
# with each process's first session that records usage events in ~/.cache/Microsoft and tries to upload them. Read
# by onnxruntime when it is imported, so set here; a value the user set is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _openvino_telemetry_off() -> None:
    """OpenVINO (2025–2026) sends a usage event to Google Analytics each time it is imported (`openvino.tools.ovc`,
    through the optional `openvino_telemetry` package), from a forked copy of the whole process, and keeps a client
    id in ~/intel — unless a consent file there declines. transferkit sends nothing anywhere: OpenVINO is made to
    take the path it takes when that package is not installed (its own no-op stub), unless the user opted in
    (the consent file reads "1") or imported the package already."""
    if "openvino_telemetry" in sys.modules:
        return
    consent = Path.home() / ("Intel Corporation" if sys.platform == "win32" else "intel") / "openvino_telemetry"
    try:
        accepted = consent.read_text(encoding="utf-8").strip() == "1"
    except (OSError, RuntimeError, UnicodeDecodeError):  # no file, no home: not accepted
        accepted = False
    if not accepted:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # `import` then raises ImportError


_openvino_telemetry_off()

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
