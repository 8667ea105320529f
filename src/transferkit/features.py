"""Batched feature extraction (the fast path) on an engine, reading and filling the feature cache.

Extraction streams the inputs through a DataLoader (decoding in a worker process while the model
runs): memory holds a few batches and the result array, whatever the number of inputs. Each
batch runs on an engine (`transferkit.engines`): PyTorch (a copy of the backbone arranged for
inference: BatchNorm folded, channels_last, bf16 autocast where the CPU runs bf16 natively), or
the backbone's exported ONNX graph on onnxruntime or OpenVINO. The engine is chosen on the first
batch (`engine="auto"`: the fastest installed one whose features agree with PyTorch fp32 there;
see `transferkit.engines.select`) and named on the result, with any fallback in `notes`.

Text is batched longest first (`Backbone.batch_order`), so each batch pads to the length of
texts like its own, not to the longest of a random mix; every result goes back to its input's
place. With `devices=N`, the inputs are split over N processes (Lightning Fabric), each writing
its shards into the one cache. Inputs that cannot be read are skipped and reported, never fatal.

Features are read from and written to the on-disk cache (`transferkit.cache`), keyed by the
precision they were computed in (a backbone that runs on its own engine: fp32, what it computes). The
engine is not part of the key, since every engine that is used has matched PyTorch's features first;
the precision is, since bf16 rows differ from fp32 ones by more than any engine's rounding. `auto`
runs whichever of fp32 and bf16 wins the race here, so it reads both: first the precision the
hardware suggests, then the other (`cache_precisions`); the rows it computes go under the precision
the chosen engine ran, and the result names every precision its rows came in.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import torch

from transferkit.backbones.contract import Backbone
from transferkit.cache import FeatureCache, default_cache_dir, item_key
from transferkit.data.augment import augmenting
from transferkit.engines.run import forget_kept
from transferkit.engines.select import (
    MIN_COSINE,
    BatchEngine,
    Calibration,
    Selection,
    check_request,
    select_engine,
)
from transferkit.errors import ConfigError, InputError
from transferkit.params import BATCH_SIZE, DEVICE, ENGINE, PRECISION, PROGRESS
from transferkit.runtime import eval_mode, resolve_device, resolve_precision, trim_heap

if TYPE_CHECKING:
    from lightning.fabric import Fabric

#: the most bytes of features a cache shard holds (fewer rows than `shard_size` for wide features). Writing one
#: holds it twice (its rows, then its serialised bytes): at 32 MB, writing hashed n-grams was a text fit's peak
SHARD_BYTES = 8 * 2**20
#: below this cosine similarity to fp32 features (any sample of the first batch), bf16 is not used.
BF16_MIN_COSINE = MIN_COSINE["bf16"]


@dataclass(frozen=True)
class ExtractOptions:
    """How to run extraction. Defaults are the fast path."""

    batch_size: int = BATCH_SIZE.default
    #: "auto" (bf16 where the hardware runs it natively and it agrees with fp32), "fp32", "bf16",
    #: or "int8" (OpenVINO post-training quantization, calibrated on `calibration`)
    precision: str = PRECISION.default
    #: "auto" (the fastest installed engine that agrees with PyTorch), "torch", "onnxruntime", "openvino"
    engine: str = ENGINE.default
    #: run a copy arranged for inference (`Backbone.for_inference`: BatchNorm folded, channels_last)
    optimize: bool = True
    num_workers: int | None = None
    device: str | None = DEVICE.default
    progress: bool = PROGRESS.default
    shard_size: int = 2048
    #: processes to extract on (Lightning Fabric); each writes its shards into the one cache
    devices: int = 1
    #: inputs int8 quantization calibrates on (the training inputs); empty: the first 300 extracted
    calibration: tuple[object, ...] = ()


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
    #: the engine the features were computed on ("torch", "onnxruntime", "openvino"; "cache" when
    #: everything came from the cache)
    engine: str = "cache"
    #: least cosine similarity to PyTorch fp32 features on the first batch (None: not checked)
    parity: float | None = None
    #: what the user should know: the engine auto chose and why, fallbacks and their reasons
    notes: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    engine: str = "cache"
    precision: str = "fp32"
    parity: float | None = None
    notes: list[str] = field(default_factory=list)


class _Inputs(torch.utils.data.Dataset):
    """Loads one input per index; a bad input becomes (index, None, reason) instead of an error."""

    def __init__(self, items: Sequence[object], indices: Sequence[int], loader: Callable[[object], object]) -> None:
        self.items, self.indices, self.loader = items, list(indices), loader

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, object, str | None]:
        index = self.indices[i]
        try:
            return index, self.loader(self.items[index]), None
        except InputError as exc:
            return index, None, str(exc)


def _collate_pairs(batch: list[tuple[int, object, str | None]]) -> list[tuple[int, object, str | None]]:
    return batch


def _default_workers(n_items: int, modality: str) -> int:
    """Loader processes: none for text (checking a string costs nothing; a worker only adds
    inter-process traffic) or few inputs, else up to half the cores for decoding."""
    cpus = os.cpu_count() or 1
    if n_items < 64 or modality == "text":
        return 0
    return max(1, min(4, cpus // 2))


def extract_features(
    backbone: Backbone,
    items: Sequence[object],
    *,
    options: ExtractOptions | None = None,
    cache: FeatureCache | None = None,
    description: str = "extracting features",
) -> Features:
    """Pooled features of `items` from a frozen `backbone`, reading and filling `cache`."""
    if len(backbone.parts()) > 1:  # a concatenation: each part extracted and cached on its own
        return _side_by_side(backbone, items, options=options, cache=cache, description=description)
    out = np.zeros((len(items), backbone.num_features), dtype=np.float32)
    feats = _extract_into(out, backbone, items, options=options, cache=cache, description=description)
    feats.values = out if feats.ok.all() else _compact(out, feats.ok)
    return feats


def release_engines() -> None:
    """Let go of the graph engine an extraction call kept for the next call of the same graph in this process
    (`engines.run.keep`; the next extraction call lets it go itself when it does not run on it), before work
    that needs the memory more than the next call needs the speed: a head's training (MiniLM's OpenVINO model
    holds ~180 MB; kept through the head's fit, a text fit of 3,000 texts peaked at 1.76 GB instead of 1.55)."""
    forget_kept()
    trim_heap()


def _extract_into(
    out: np.ndarray,
    backbone: Backbone,
    items: Sequence[object],
    *,
    options: ExtractOptions | None,
    cache: FeatureCache | None,
    description: str,
) -> Features:
    """`extract_features` of one backbone into `out` (a row per input, in input order; the rows of the
    inputs that could not be read are left as they are); the result's `values` is `out`."""
    opts = options or ExtractOptions()
    check_request(opts.engine, opts.precision)
    if opts.devices < 1:
        raise ConfigError(f"devices must be at least 1, got {opts.devices}")
    start = time.perf_counter()
    device = resolve_device(opts.device)
    precision = "int8" if opts.precision == "int8" else resolve_precision(opts.precision, device)
    if backbone.native_engine is not None:  # it runs as it ships, in fp32, whatever was asked: one cache entry
        precision = "fp32"
    n = len(items)
    ok = np.zeros(n, dtype=bool)
    failed: dict[int, str] = {}

    keys = [item_key(item, backbone.modality) if cache else "" for item in items]
    folder = cache.folder(backbone, precision) if cache else None
    found_in: dict[str, int] = {}  # rows read from the cache, by precision
    todo = list(range(n))
    if cache:
        todo = _from_cache(cache, backbone, cache_precisions(opts.precision, precision), keys, out, ok, failed,
                           found_in)
    n_cached = n - len(todo)

    outcome = _Outcome(precision=_most(found_in) or precision)
    if todo:
        order = backbone.batch_order([items[i] for i in todo])
        if order is not None:
            todo = [todo[j] for j in order]
        job = _Job(backbone, items, keys, opts, device, cache, folder, description)
        if opts.devices > 1 and len(todo) > opts.batch_size:
            outcome = _run_parallel(job, todo, out, ok, failed)
        else:
            outcome = _run(job, todo, out, ok, failed)
        trim_heap()  # the engine and its buffers are let go: what they freed goes back before the caller goes on
        if outcome.engine == "none":  # no input could be read: nothing ran
            outcome.precision = _most(found_in) or precision
    if outcome.engine != "none":
        _say_mixed(outcome, found_in, int(ok.sum()) - sum(found_in.values()))
    return Features(
        values=out,
        ok=ok,
        failed=dict(sorted(failed.items())),
        extracted=len(todo),
        cached=n_cached,
        precision=outcome.precision,
        seconds=time.perf_counter() - start,
        engine=outcome.engine,
        parity=outcome.parity,
        notes=outcome.notes,
    )


def _from_cache(cache: FeatureCache, backbone: Backbone, precisions: list[str], keys: list[str], out: np.ndarray,
                ok: np.ndarray, failed: dict[int, str], found_in: dict[str, int]) -> list[int]:
    """Fill `out`/`ok` (and `failed`) from the cache's folders of `precisions`, in order, counting the rows read
    by precision in `found_in`; returns the inputs still to extract."""
    todo = list(range(len(keys)))
    for looked_up in precisions:
        vectors, failures = cache.lookup(cache.folder(backbone, looked_up), [keys[i] for i in todo])
        missing = []
        for i in todo:  # reads only the shards holding these keys
            key = keys[i]
            if key and key in vectors and vectors[key].shape == (backbone.num_features,):
                out[i], ok[i] = vectors[key], True
                found_in[looked_up] = found_in.get(looked_up, 0) + 1
            elif key and key in failures:
                failed[i] = failures[key]
            else:
                missing.append(i)
        todo = missing
        del vectors, failures
        if not todo:
            break
    return todo


def cache_precisions(asked: str, resolved: str) -> list[str]:
    """The cache folders a request reads, by precision, in order: `resolved` (what `asked` resolved to here),
    then, for `auto` resolved to bf16, fp32 — the race may choose an engine that runs fp32 (ONNX Runtime, or
    OpenVINO without AMX), whose rows are kept under fp32."""
    return [resolved, "fp32"] if asked == "auto" and resolved == "bf16" else [resolved]


def _say_mixed(outcome: _Outcome, cached: dict[str, int], computed: int) -> None:
    """When the rows came in more than one precision (an earlier run of `auto` chose an engine of the other
    one), say how many of each in `outcome.notes`; `outcome.precision` becomes the precision of most rows."""
    rows = dict(cached)
    if computed:
        rows[outcome.precision] = rows.get(outcome.precision, 0) + computed
    if len(rows) < 2:
        return
    outcome.precision = _most(rows)
    outcome.notes.append("features in more than one precision: " + ", ".join(
        f"{n} {p}" + (f" ({cached[p]} of them from the cache)" if cached.get(p) else "") for p, n in rows.items()))


def _most(rows: dict[str, int]) -> str:
    """The precision of most rows ("" for none)."""
    return max(rows, key=rows.__getitem__) if rows else ""


def _compact(out: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The rows of `out` where `ok`, in order, moved to the front in place (no second n×D copy)."""
    kept = 0
    for i in np.flatnonzero(ok):
        if i != kept:
            out[kept] = out[i]
        kept += 1
    return out[:kept]


@dataclass
class _Job:
    """What every extraction process needs (picklable for `devices > 1`)."""

    backbone: Backbone
    items: Sequence[object]
    keys: list[str]
    opts: ExtractOptions
    device: torch.device
    cache: FeatureCache | None
    folder: Path | None
    description: str

    @property
    def root(self) -> Path:
        """The cache root: exported graphs go under root/engines even when features are not cached."""
        return self.cache.root if self.cache else default_cache_dir()

    def calibration(self, todo: list[int]) -> Calibration | None:
        if self.opts.precision != "int8":
            return None
        from transferkit.engines.quantize import CALIBRATION_SAMPLES

        chosen = list(self.opts.calibration) or [self.items[i] for i in sorted(todo)[:CALIBRATION_SAMPLES]]
        modality = self.backbone.modality
        digest = hashlib.sha256("\n".join(item_key(c, modality) or repr(c)[:200] for c in chosen).encode())
        loader = self.backbone.sample_loader()

        def samples() -> Iterator[object]:
            for item in chosen:
                try:
                    yield loader(item)
                except InputError:
                    continue

        return Calibration(digest=digest.hexdigest(), samples=samples)


def _run(job: _Job, todo: list[int], out: np.ndarray, ok: np.ndarray, failed: dict[int, str]) -> _Outcome:
    """Extract the inputs `todo` into `out` (rows in input order) on the engine chosen on the first batch."""
    backbone, keys = job.backbone, job.keys
    shards = _ShardWriter(job, out)
    copies: list[Backbone] = []

    def torch_model() -> Backbone:
        """The backbone as the torch engine runs it: one copy arranged for inference, made on demand."""
        if not copies:
            copies.append((backbone.for_inference() if job.opts.optimize else backbone).eval().to(job.device))
        return copies[0]

    was_training = backbone.training
    _prepare(backbone, job.device)
    selection: Selection | None = None
    with _progress(job.opts.progress, job.description, len(todo)) as advance, _Batches(job, todo) as batches, \
            _Running(out, ok, keys, shards, advance) as running:
        try:
            for batch, collated in batches:
                good = [(i, sample) for i, sample, _ in batch if sample is not None]
                for i, _, reason in batch:
                    if reason is not None:
                        failed[i] = reason
                        shards.fail(keys[i], reason)
                advance(len(batch) - len(good))
                if good and selection is None:
                    selection = _select(job, torch_model, [s for _, s in good], todo)
                    if job.cache:  # rows go under the precision the chosen engine runs (`cache_precisions`)
                        shards.folder = job.cache.folder(backbone, selection.engine.precision)
                    forget_kept()  # a runner kept by the last call that this one did not take: not beside this one
                    if selection.engine.engine != "torch":  # the torch copy only raced: not kept alive
                        copies.clear()
                    if selection.first is not None:  # the first batch's features, from the check
                        running.put(good, selection.first)
                        good = []
                if selection is not None:  # the next batch is collated while the engine runs this one
                    batches.collate_ahead()
                if good:
                    assert selection is not None
                    running.start(good, selection.engine, collated if collated is not None
                                  else backbone.collate([s for _, s in good]))
                shards.flush_when_full()
            running.finish()
            shards.flush()
            if selection is not None:
                selection.engine.done()
        finally:
            if was_training:
                backbone.train()
    if selection is None:
        return _Outcome(engine="none", precision=job.opts.precision)
    return _Outcome(engine=selection.engine.engine, precision=selection.engine.precision,
                    parity=selection.min_cosine, notes=selection.notes)


class _Running:
    """The batch the engine runs while the next one is got ready (`BatchEngine.start`: on OpenVINO's streams the
    next batch's runs are queued before this one's features are put in place, so the streams do not wait for
    this thread between batches), and what puts each batch's features in `out`, in the cache and on the bar.

    EfficientNet-Lite0, 384 JPEGs (400x300) end to end on OpenVINO's 2 streams, 2-core AVX-512 EPYC shared with
    other work, this with `OpenVINORunner.QUEUED_PER_STREAM` against one run in flight per stream taken in turn and
    each batch collected before the next: 1.095x at load 5-9 and 1.042x at load 10-12.6 (medians of the ratios of 6
    alternating rounds in one process), the same features bit for bit; 13.5-14.1 core-ms an image either way."""

    def __init__(self, out: np.ndarray, ok: np.ndarray, keys: list[str], shards: _ShardWriter,
                 advance: Callable[[int], None]) -> None:
        self.out, self.ok, self.keys, self.shards, self.advance = out, ok, keys, shards, advance
        self.batch: tuple[list[tuple[int, object]], Callable[[], torch.Tensor]] | None = None

    def __enter__(self) -> _Running:
        return self

    def put(self, good: list[tuple[int, object]], feats: torch.Tensor) -> None:
        """The features of the samples `good` (index, sample), in order, into their rows."""
        for (i, _), row in zip(good, feats.numpy(), strict=True):
            self.out[i], self.ok[i] = row, True
            self.shards.add(self.keys[i], i)
        self.advance(len(good))

    def start(self, good: list[tuple[int, object]], engine: BatchEngine, batch: object) -> None:
        """`batch` (of the samples `good`) started on `engine`, then the batch started before it put in place."""
        started = engine.start(batch)
        self.finish()
        self.batch = (good, started)

    def finish(self) -> None:
        """The batch started last put in place (once its features are there)."""
        if self.batch is not None:
            good, started = self.batch
            self.batch = None
            self.put(good, started())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.batch is not None:  # an error while a batch ran: it finishes before its inputs go
            started, self.batch = self.batch[1], None
            with suppress(Exception):
                started()


def _prepare(module: torch.nn.Module, device: torch.device) -> None:
    """`module.eval().to(device)`, each step only when something changes (`runtime.eval_mode`; `.to` walks
    every parameter and buffer too)."""
    eval_mode(module)
    if any(t.device != device for t in (*module.parameters(), *module.buffers())):
        module.to(device)


_Batch = list[tuple[int, object, str | None]]


class _Batches:
    """The loader's batches of `todo`, each with its readable samples collated when that was done ahead.

    Once `collate_ahead` is called (the engine is chosen), each batch is handed out with the next one
    already being loaded and collated in a thread, while the engine runs this one: a text's tokenisation
    (~4 ms a batch of 32 on 2 cores) no longer leaves the engine's threads idle between batches. Only when
    the loader runs in this process (no workers: texts, and small calls): with worker processes, the
    decoding already overlaps the engine, and batches keep coming in the order and at the time they did."""

    def __init__(self, job: _Job, todo: list[int]) -> None:
        self.loader = _loader(job, todo)
        self.collate = job.backbone.collate
        self.ahead = self.loader.num_workers == 0
        self.pool: ThreadPoolExecutor | None = None
        self.pending: Future[tuple[_Batch | None, object | None]] | None = None

    def __enter__(self) -> _Batches:
        self.batches = iter(self.loader)
        return self

    def __iter__(self) -> Iterator[tuple[_Batch, object | None]]:
        while True:
            if self.pending is not None:
                batch, collated = self.pending.result()
                self.pending = None
            else:
                batch, collated = next(self.batches, None), None
            if batch is None:
                return
            yield batch, collated

    def collate_ahead(self) -> None:
        """Start loading and collating the next batch (in a thread), when batches are collated ahead."""
        if not self.ahead or self.pending is not None:
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="transferkit-collate")
        self.pending = self.pool.submit(self._next)

    def _next(self) -> tuple[_Batch | None, object | None]:
        batch = next(self.batches, None)
        if batch is None:
            return None, None
        samples = [sample for _, sample, _ in batch if sample is not None]
        return batch, self.collate(samples) if samples else None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)  # a batch being collated finishes first


def _loader(job: _Job, todo: list[int]) -> torch.utils.data.DataLoader:
    """Batches of (index, sample or None, reason) for `todo`, decoded in worker processes (images, audio)."""
    opts = job.opts
    workers = opts.num_workers if opts.num_workers is not None else _default_workers(len(todo), job.backbone.modality)
    return torch.utils.data.DataLoader(
        _Inputs(job.items, todo, augmenting(job.backbone.sample_loader())),
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate_pairs,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


def _select(job: _Job, torch_model: Callable[[], Backbone], samples: list[object], todo: list[int]) -> Selection:
    """The engine for extracting `todo`, chosen on its first batch's `samples` (`engines.select_engine`)."""
    opts = job.opts
    return select_engine(
        job.backbone, torch_model, samples, engine=opts.engine, precision=opts.precision, device=job.device,
        channels_last=opts.optimize, root=job.root, items_to_extract=len(todo), calibration=job.calibration(todo),
    )


class _ShardWriter:
    """The features extracted since the last write, written to the cache a shard at a time.

    A shard holds at most `shard_size` rows and ~SHARD_BYTES: wide features (hashed n-grams, 16k
    floats a row) would otherwise hold 130 MB per shard, copied twice on the way to disk. Rows are
    copied out of `out` only when their shard is written."""

    def __init__(self, job: _Job, out: np.ndarray) -> None:
        self.cache, self.folder, self.out = job.cache, job.folder, out
        self.rows_per_shard = max(1, min(job.opts.shard_size, SHARD_BYTES // max(1, 4 * out.shape[1])))
        self.keys: list[str] = []
        self.rows: list[int] = []
        self.failed: dict[str, str] = {}

    def add(self, key: str, row: int) -> None:
        if key:
            self.keys.append(key)
            self.rows.append(row)

    def fail(self, key: str, reason: str) -> None:
        if key:
            self.failed[key] = reason

    def flush_when_full(self) -> None:
        if len(self.keys) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if self.cache and self.folder is not None and (self.keys or self.failed):
            self.cache.write(self.folder, list(self.keys), self.out[self.rows], dict(self.failed))
        self.keys.clear()
        self.rows.clear()
        self.failed.clear()


def _run_parallel(job: _Job, todo: list[int], out: np.ndarray, ok: np.ndarray, failed: dict[int, str]) -> _Outcome:
    """The first batch here (it chooses the engine), the rest split over `devices` processes.

    Every process runs the engine chosen here (so all features come from one engine), writes its
    features into the one cache, and hands its rows back through a file.
    """
    import tempfile

    from lightning.fabric import Fabric

    first, rest = todo[: job.opts.batch_size], todo[job.opts.batch_size :]
    if job.opts.precision == "int8" and not job.opts.calibration:
        from transferkit.engines.quantize import CALIBRATION_SAMPLES

        pinned = tuple(job.items[i] for i in sorted(todo)[:CALIBRATION_SAMPLES])
        job = replace(job, opts=replace(job.opts, calibration=pinned))
    outcome = _run(job, first, out, ok, failed)
    chosen = outcome.engine if outcome.engine in ("torch", "onnxruntime", "openvino") else job.opts.engine
    precision = outcome.precision if outcome.engine != "none" else job.opts.precision
    n = job.opts.devices
    shards = [rest[r::n] for r in range(n)]
    calibration = job.opts.calibration  # pinned above for int8: every process uses the one int8 graph
    worker_job = replace(job, opts=replace(job.opts, engine=chosen, precision=precision, progress=False,
                                           devices=1, calibration=calibration,
                                           num_workers=job.opts.num_workers if job.opts.num_workers else 0))
    accelerator = "cuda" if job.device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="transferkit-extract-") as tmp:
        fabric = Fabric(accelerator=accelerator, devices=n, strategy="ddp_spawn")
        fabric.launch(functools.partial(_extract_shard, job=worker_job, shards=shards, tmp=tmp))
        for rank in range(n):
            with np.load(Path(tmp) / f"rank-{rank}.npz", allow_pickle=False) as part:
                index, values = part["index"], part["values"]
                out[index], ok[index] = values, True
                reasons = part["failed_reason"]
                for i, reason in zip(part["failed_index"].tolist(), reasons.tolist(), strict=True):
                    failed[int(i)] = str(reason)
    outcome.notes.append(f"extracted on {n} processes ({len(first)} inputs here, then {len(rest)} split over them)")
    return outcome


def _extract_shard(fabric: Fabric, job: _Job, shards: list[list[int]], tmp: str) -> None:
    """One Fabric process: extract its shard into the cache and hand the rows back in a file."""
    rank = int(fabric.global_rank)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, len(shards))))
    if job.device.type == "cuda":
        job = replace(job, device=fabric.device)
    todo = shards[rank]
    out = np.zeros((len(job.items), job.backbone.num_features), np.float32)
    ok = np.zeros(len(job.items), bool)
    failed: dict[int, str] = {}
    if todo:
        _run(job, todo, out, ok, failed)
    index = np.flatnonzero(ok)
    final = Path(tmp) / f"rank-{rank}.npz"
    partial = Path(tmp) / f".rank-{rank}.npz"
    np.savez(partial, index=index, values=out[index], failed_index=np.array(list(failed), dtype=np.int64),
             failed_reason=np.array(list(failed.values()), dtype=str))
    os.replace(partial, final)
    fabric.barrier()


class _progress:
    """A rich progress bar (to stderr) when enabled; a no-op otherwise."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self) -> Callable[[int], None]:
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


def _side_by_side(backbone: Backbone, items: Sequence[object], *, options: ExtractOptions | None,
                  cache: FeatureCache | None, description: str) -> Features:
    """The features of every part of a concatenation, side by side; an input any part cannot read fails.

    The widest part is extracted straight into its columns of the one result array (no n×D array of
    it beside the result: hashed n-grams are 16k floats a row); the others each into an array of their
    own, copied into their columns once the result exists. The result is made only when the widest
    part's turn comes: a few columns written into every row of a wide array make all of it resident
    (numpy asks for transparent huge pages for large arrays: 384 of 16,768 columns written into 2,550
    rows took 163 MB, not 10), and before it MiniLM's engine race and extraction ran beside that."""
    start = time.perf_counter()
    parts = backbone.parts()
    widths = [int(part.num_features) for part in parts]
    widest = int(np.argmax(widths))
    edges = np.cumsum([0, *widths])
    values: np.ndarray | None = None
    own: dict[int, np.ndarray] = {}
    results = []
    for k, part in enumerate(parts):
        if k == widest:
            values = np.zeros((len(items), sum(widths)), np.float32)
            target = values[:, edges[k] : edges[k + 1]]
        else:
            target = own[k] = np.zeros((len(items), widths[k]), np.float32)
        results.append(_extract_into(target, part, items, options=options, cache=cache,
                                     description=f"{description}: {part.name}"))
    assert values is not None
    for k, block in own.items():
        values[:, edges[k] : edges[k + 1]] = block
    del own
    ok = np.logical_and.reduce([r.ok for r in results])
    failed: dict[int, str] = {}
    for r in results:
        for i, reason in r.failed.items():
            failed.setdefault(i, reason)
    return Features(values=values if ok.all() else _compact(values, ok), ok=ok,
                    failed=dict(sorted(failed.items())), extracted=sum(r.extracted for r in results),
                    cached=sum(r.cached for r in results), precision=results[0].precision,
                    seconds=time.perf_counter() - start, engine=",".join(dict.fromkeys(r.engine for r in results)),
                    parity=min((r.parity for r in results if r.parity is not None), default=None),
                    notes=[n for r in results for n in r.notes])
