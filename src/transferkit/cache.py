"""The on-disk feature cache: features of each input, per backbone configuration.

One folder per (backbone name, weights sha256, preprocessing config, precision); in it, shards of
features written atomically (temp file + rename) every `shard_size` samples, so a killed run keeps
what it finished and never leaves a torn file. A sample is keyed by its content (text) or by
path + size + mtime (files). A second extraction of the same data extracts nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.backbones.base import Backbone


def default_cache_dir() -> Path:
    """`$TRANSFERKIT_CACHE`, else `$XDG_CACHE_HOME/transferkit`, else `~/.cache/transferkit`."""
    env = os.environ.get("TRANSFERKIT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "transferkit"


def resolve_cache(cache: FeatureCache | str | Path | bool | None) -> FeatureCache | None:
    """The cache a `cache_dir=` argument means: False → none, None/True → the default folder,
    a folder → that folder, a FeatureCache → itself."""
    if cache is False:
        return None
    if isinstance(cache, FeatureCache):
        return cache
    return FeatureCache(default_cache_dir() if cache is None or cache is True else cache)


def item_key(item: Any, modality: str) -> str:
    """Stable identity of one input: path + size + mtime for files, content hash otherwise."""
    if modality in ("image", "audio") and isinstance(item, str | Path):
        p = Path(item)
        try:
            st = p.stat()
        except OSError:
            return "missing:" + str(p.resolve())
        raw = f"file:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    elif isinstance(item, str):
        raw = "text:" + item
    elif isinstance(item, dict):
        raw = "row:" + json.dumps(item, sort_keys=True, default=str)
    else:
        return ""  # in-memory objects (PIL images, arrays) are not cached
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class FeatureCache:
    """Features on disk, one folder per backbone configuration, shards written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, backbone: Backbone, precision: str) -> Path:
        ident = {
            "name": backbone.name,
            "weights": backbone.weights_id,
            "preprocess": backbone.preprocess_config(),
            "precision": precision,
        }
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / "features" / f"{backbone.name.replace('/', '_')}-{digest}"

    def read(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Every cached vector and every cached failure in `folder` (key → vector / reason)."""
        from safetensors import safe_open
        from safetensors.numpy import load_file

        vectors: dict[str, np.ndarray] = {}
        failures: dict[str, str] = {}
        if not folder.is_dir():
            return vectors, failures
        for shard in sorted(folder.glob("shard-*.safetensors")):
            try:
                with safe_open(str(shard), framework="numpy") as fh:
                    meta = fh.metadata() or {}
                arrays = load_file(str(shard))
                keys = json.loads(meta.get("keys", "[]"))
                failures.update(json.loads(meta.get("failed", "{}")))
            except Exception:  # a shard from a foreign writer or a broken disk: ignore it
                continue
            values = arrays.get("features")
            if values is None or len(keys) != len(values):
                continue
            for key, row in zip(keys, values, strict=True):
                vectors[key] = row
        return vectors, failures

    def write(self, folder: Path, keys: list[str], values: np.ndarray, failed: dict[str, str]) -> None:
        from safetensors.numpy import save_file

        if not keys and not failed:
            return
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("".join(keys + sorted(failed)).encode()).hexdigest()[:16]
        final = folder / f"shard-{time.time_ns()}-{digest}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
        os.close(fd)
        try:
            arr = values if len(keys) else np.zeros((0, 1), np.float32)
            save_file(
                {"features": np.ascontiguousarray(arr, dtype=np.float32)},
                tmp,
                metadata={"keys": json.dumps(keys), "failed": json.dumps(failed)},
            )
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
