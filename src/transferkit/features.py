"""Batched feature extraction (the fast path) and the on-disk feature cache.

Extraction streams the inputs through a DataLoader (decoding in a worker process while the model
runs), under `torch.inference_mode`, on a copy of the backbone arranged for inference (BatchNorm
folded into the convolutions, channels_last), with bf16 autocast where the CPU runs bf16
natively. Before trusting bf16 it checks the first batch against fp32 and falls back to fp32 when
the two disagree. Inputs that cannot be read are skipped and reported, never fatal here.

Features are read from and written to the on-disk cache (`transferkit.cache`), so a second
extraction of the same data extracts nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone
from transferkit.cache import FeatureCache, item_key
from transferkit.data.augment import augmenting
from transferkit.errors import InputError
from transferkit.runtime import autocast, resolve_device, resolve_precision

#: below this mean cosine similarity between bf16 and fp32 features, bf16 is not used.
BF16_MIN_COSINE = 0.99


@dataclass(frozen=True)
class ExtractOptions:
    """How to run extraction. Defaults are the fast path; every field is also a CLI flag."""

    batch_size: int = 32  # measured: faster than 64 or 128 on these CPUs (caches)
    precision: str = "auto"
    #: run a copy arranged for inference (`Backbone.for_inference`: BatchNorm folded, channels_last)
    optimize: bool = True
    num_workers: int | None = None
    device: str | None = None
    progress: bool = True
    shard_size: int = 2048


@dataclass
class Features:
    """Features of the inputs that could be read; `failed` names the ones that could not."""

    values: np.ndarray  # [n_ok, D] float32, in input order
    ok: np.ndarray  # [n_items] bool
    failed: dict[int, str] = field(default_factory=dict)  # item index → reason
    extracted: int = 0  # computed in this call
    cached: int = 0  # read from the cache
    precision: str = "fp32"
    seconds: float = 0.0


class _Inputs(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Loads one input per index; a bad input becomes (index, None, reason) instead of an error."""

    def __init__(self, items: Sequence[Any], indices: Sequence[int], loader: Any) -> None:
        self.items, self.indices, self.loader = items, list(indices), loader

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        index = self.indices[i]
        try:
            return index, self.loader(self.items[index]), None
        except InputError as exc:
            return index, None, str(exc)


def _collate_pairs(batch: list[tuple[int, Any, str | None]]) -> list[tuple[int, Any, str | None]]:
    return batch


def _default_workers(n_items: int) -> int:
    cpus = os.cpu_count() or 1
    if n_items < 64:
        return 0
    return max(1, min(4, cpus // 2))


def extract_features(
    backbone: Backbone,
    items: Sequence[Any],
    *,
    options: ExtractOptions | None = None,
    cache: FeatureCache | None = None,
    description: str = "extracting features",
) -> Features:
    """Pooled features of `items` from a frozen `backbone`, reading and filling `cache`."""
    if len(backbone.parts()) > 1:  # a concatenation: each part extracted and cached on its own
        return _side_by_side(backbone, items, options=options, cache=cache, description=description)
    opts = options or ExtractOptions()
    start = time.perf_counter()
    device = resolve_device(opts.device)
    precision = resolve_precision(opts.precision, device)
    n = len(items)
    dim = backbone.num_features
    out = np.zeros((n, dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    failed: dict[int, str] = {}

    keys = [item_key(item, backbone.modality) if cache else "" for item in items]
    folder = cache.folder(backbone, precision) if cache else None
    todo = list(range(n))
    n_cached = 0
    if cache and folder is not None:
        vectors, failures = cache.lookup(folder, keys)  # reads only the shards holding these keys
        todo = []
        for i, key in enumerate(keys):
            if key and key in vectors and vectors[key].shape == (dim,):
                out[i], ok[i] = vectors[key], True
                n_cached += 1
            elif key and key in failures:
                failed[i] = failures[key]
                n_cached += 1
            else:
                todo.append(i)

    if todo:
        precision = _run(backbone, items, todo, out, ok, failed, keys, opts, device, precision, cache, folder,
                         description)
    return Features(
        values=out[ok],
        ok=ok,
        failed=dict(sorted(failed.items())),
        extracted=len(todo),
        cached=n_cached,
        precision=precision,
        seconds=time.perf_counter() - start,
    )


def _run(
    backbone: Backbone,
    items: Sequence[Any],
    todo: list[int],
    out: np.ndarray,
    ok: np.ndarray,
    failed: dict[int, str],
    keys: list[str],
    opts: ExtractOptions,
    device: torch.device,
    precision: str,
    cache: FeatureCache | None,
    folder: Path | None,
    description: str,
) -> str:
    workers = opts.num_workers if opts.num_workers is not None else _default_workers(len(todo))
    loader = torch.utils.data.DataLoader(
        _Inputs(items, todo, augmenting(backbone.sample_loader())),
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate_pairs,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    model = backbone.for_inference() if opts.optimize else backbone
    was_training = model.training
    model.eval().to(device)
    pending_keys: list[str] = []
    pending_rows: list[np.ndarray] = []
    pending_failed: dict[str, str] = {}

    def flush() -> None:
        if cache and folder is not None and (pending_keys or pending_failed):
            values = np.stack(pending_rows) if pending_rows else np.zeros((0, out.shape[1]), np.float32)
            cache.write(folder, list(pending_keys), values, dict(pending_failed))
        pending_keys.clear()
        pending_rows.clear()
        pending_failed.clear()

    checked_bf16 = precision != "bf16"
    with _progress(opts.progress, description, len(todo)) as advance, torch.inference_mode():
        for batch in loader:
            good = [(i, sample) for i, sample, _ in batch if sample is not None]
            for i, _, reason in batch:
                if reason is not None:
                    failed[i] = reason
                    if keys[i]:
                        pending_failed[keys[i]] = reason
            if good:
                x = model.to_batch_device(model.collate([s for _, s in good]), device)
                if opts.optimize and isinstance(x, torch.Tensor) and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(precision, device):
                    feats = model.forward_features(x)
                if not checked_bf16:
                    checked_bf16 = True
                    if not _bf16_agrees(model, x, feats):
                        precision, feats = "fp32", model.forward_features(x)
                rows = feats.float().cpu().numpy()
                for (i, _), row in zip(good, rows, strict=True):
                    out[i], ok[i] = row, True
                    if keys[i]:
                        pending_keys.append(keys[i])
                        pending_rows.append(row)
            if len(pending_keys) >= opts.shard_size:
                flush()
            advance(len(batch))
    flush()
    model.train(was_training)
    return precision


def _bf16_agrees(backbone: Backbone, batch: Any, bf16_features: torch.Tensor, n: int = 8) -> bool:
    """Compare bf16 features of the first `n` samples with fp32 ones (cosine ≥ BF16_MIN_COSINE)."""
    head = batch[:n] if isinstance(batch, torch.Tensor) else {
        k: v[:n] if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }
    reference = backbone.forward_features(head).float()
    cosine = torch.nn.functional.cosine_similarity(bf16_features[: len(reference)].float(), reference, dim=1)
    return bool(float(cosine.min()) >= BF16_MIN_COSINE)


class _progress:
    """A rich progress bar (to stderr) when enabled; a no-op otherwise."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),

            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._bar.__exit__(exc_type, exc, tb)


def _side_by_side(backbone: Backbone, items: Sequence[Any], *, options: ExtractOptions | None,
                  cache: FeatureCache | None, description: str) -> Features:
    """The features of every part of a concatenation, side by side; an input any part cannot read fails."""
    start = time.perf_counter()
    results = [extract_features(part, items, options=options, cache=cache, description=f"{description}: {part.name}")
               for part in backbone.parts()]
    ok = np.logical_and.reduce([r.ok for r in results])
    failed: dict[int, str] = {}
    for r in results:
        for i, reason in r.failed.items():
            failed.setdefault(i, reason)
    blocks = []
    for r in results:
        full = np.zeros((len(items), r.values.shape[1] if r.values.ndim == 2 else 0), np.float32)
        full[r.ok] = r.values
        blocks.append(full[ok])
    return Features(values=np.concatenate(blocks, axis=1) if blocks else np.zeros((0, 0), np.float32), ok=ok,
                    failed=dict(sorted(failed.items())), extracted=sum(r.extracted for r in results),
                    cached=sum(r.cached for r in results), precision=results[0].precision,
                    seconds=time.perf_counter() - start)
