"""A trained model on disk: a folder with `transferkit.json`, `model.safetensors`, `README.md`.

No pickle anywhere: loading a bundle reads JSON and tensors and never executes code from it.
The backbone is stored by reference (name + weights sha256 + preprocessing); the backbone's own
weights are written only when they were trained (fine-tuning), so a probe bundle is small.
Writes are atomic: the bundle is assembled in a temporary sibling folder, then renamed into place.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from transferkit.errors import BundleError

FORMAT = "transferkit.bundle"
FORMAT_VERSION = 1
MANIFEST = "transferkit.json"
WEIGHTS = "model.safetensors"


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def check_writable(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse to write over anything the user has that is not a bundle (or a bundle, without overwrite)."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise BundleError(f"--out '{p}' is a file; give a folder path for the trained model")
    if p.is_dir() and any(p.iterdir()):
        if not is_bundle(p):
            raise BundleError(
                f"--out '{p}' is a non-empty folder that is not a transferkit bundle; refusing to "
                "write into it. Choose a new or empty folder."
            )
        if not overwrite:
            raise BundleError(
                f"--out '{p}' already holds a trained model. Pass --overwrite to replace it, or "
                "choose another folder."
            )


def save_bundle(
    out: str | Path,
    manifest: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    card: str,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically; `manifest` gets the format and version fields added."""
    from safetensors.torch import save_file

    target = Path(out)
    check_writable(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "versions": {
            "transferkit": _version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS))
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def model_card(manifest: dict[str, Any], *, title: str, facts: list[str], unit: str, usage: str) -> str:
    """The short README.md of a bundle: what it is, what it was trained on, how well it did, how to use it.

    `facts` are the lines particular to one kind of model (strategy, columns, weights…); `unit` names
    what an example is ("examples", "rows").
    """
    labels = manifest["labels"]
    training = manifest.get("training", {})
    metrics = manifest.get("metrics") or {}
    lines = [
        f"# {title}",
        "",
        f"- task: {manifest['task']} over {len(labels)} classes: "
        + ", ".join(labels[:20]) + (" …" if len(labels) > 20 else ""),
        *facts,
        f"- trained on {training.get('n_train')} {unit} (+{training.get('n_val')} validation), "
        f"seed {training.get('seed')}",
    ]
    if metrics.get("n"):
        lines.append(
            f"- test ({metrics['n']} {unit}): accuracy {metrics['accuracy']:.2%}, balanced accuracy "
            f"{metrics['balanced_accuracy']:.2%}, macro-F1 {metrics['macro_f1']:.3f}"
        )
    return "\n".join([*lines, "", usage, ""])


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A bundle's `transferkit.json`, with its format checked (no tensors read)."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"no trained model at '{p}'")
    if not is_bundle(p):
        raise BundleError(f"'{p}' is not a transferkit bundle (no {MANIFEST}); point at the folder `fit --out` made")
    try:
        manifest = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"'{p / MANIFEST}' is damaged: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"'{p}' is not a transferkit bundle (format {manifest.get('format')!r})")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise BundleError(
            f"'{p}' was written by a newer transferkit (bundle format {manifest['format_version']}); "
            "upgrade transferkit to load it"
        )
    return manifest


def load_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a bundle's manifest and tensors, checking its format."""
    from safetensors.torch import load_file

    manifest = read_manifest(path)
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise BundleError(f"'{path}' has no {WEIGHTS}")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:
        raise BundleError(f"'{weights}' is damaged: {exc}") from exc
    return manifest, tensors


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transferkit")
    except Exception:
        return "unknown"
