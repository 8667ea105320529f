"""transferkit: transfer learning for your own labelled images, text, audio and tables.

    from transferkit import TransferClassifier
    clf = TransferClassifier(backbone="efficientnet_lite0").fit(paths, labels)

Heavy modules (torch, timm…) are imported on first use, so `import transferkit` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "TabularTransferClassifier",
    "TransferClassifier",
    "TransferkitError",
    "create_backbone",
    "list_backbones",
    "load",
    "rank",
    "register_backbone",
]

#: public name → (module, attribute), imported on first use
_LAZY = {
    "TabularTransferClassifier": ("transferkit.tabular", "TabularTransferClassifier"),
    "TransferClassifier": ("transferkit.classifier", "TransferClassifier"),
    "TransferkitError": ("transferkit.errors", "TransferkitError"),
    "create_backbone": ("transferkit.backbones.registry", "create_backbone"),
    "list_backbones": ("transferkit.backbones.registry", "list_backbones"),
    "load": ("transferkit.workflow", "load_model"),
    "rank": ("transferkit.ranking.rank", "rank"),
    "register_backbone": ("transferkit.backbones.registry", "register_backbone"),
}

if TYPE_CHECKING:
    from transferkit.backbones.registry import create_backbone, list_backbones, register_backbone
    from transferkit.classifier import TransferClassifier
    from transferkit.errors import TransferkitError
    from transferkit.ranking.rank import rank
    from transferkit.tabular import TabularTransferClassifier
    from transferkit.workflow import load_model as load


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transferkit' has no attribute '{name}'")
