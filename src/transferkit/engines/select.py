"""Which engine extraction runs on, and the check that it computes what PyTorch computes.

An engine runs one collated batch to features [B, D]: `TorchEngine` (the backbone itself, with
bf16 autocast or not) or `GraphEngine` (the backbone's exported graph on onnxruntime or
OpenVINO, with the torch code around it from `Backbone.graph_parts()`).

`select_engine` looks at the first batch. Every candidate (engine × precision allowed by the
request and the hardware) runs the first few samples (a candidate alone: the whole first batch,
once, its first rows checked), and its features are compared with PyTorch fp32's (cosine per
sample: ≥ 0.99999 for fp32 engines, ≥ 0.99 for bf16, ≥ 0.95 for int8). With `engine="auto"`
the candidates that agree are timed on the whole first batch and the fastest is used; the choice
is remembered on disk for this machine, backbone and batch size, so later runs skip the race
(never the parity check) and give the same features run after run. Within one process the check is
made once per graph (its key: weights as they are in memory, preprocessing, inputs), engine,
precision and device: a later extraction call of the same graph (a fit's validation, views, test
split) does not build PyTorch's reference again, and says so in its notes.
Among torch precisions alone there is no race: bf16 where it agrees, else fp32. An engine asked
for that is not installed, cannot compile, or disagrees with PyTorch is replaced by a named
fallback, said in a note and an `EngineWarning`: never silently different numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones.contract import Backbone, GraphParts
from transferkit.engines import ENGINES
from transferkit.engines.graphs import (
    backbone_graph,
    engines_dir,
    graph_folder,
    graph_key,
    key_digest,
    write_json_atomic,
)
from transferkit.engines.run import PACKAGES, GraphRunner, is_installed, keep, open_graph, openvino_has_bf16
from transferkit.errors import ConfigError, EngineError, EngineWarning
from transferkit.jsontypes import JSONObject
from transferkit.params import ENGINE, PRECISION
from transferkit.runtime import autocast, cpu_supports_bf16, trim_heap

PRECISIONS = ("auto", "fp32", "bf16", "int8")
#: the least cosine similarity to PyTorch fp32, per sample, for an engine's output to be used
MIN_COSINE = {"fp32": 0.99999, "bf16": 0.99, "int8": 0.95}
#: samples of the first batch compared with PyTorch fp32
PARITY_SAMPLES = 8
#: below this many inputs to extract, `auto` does not export a graph just to race it (unless the
#: graph is exported already, or a previous run here chose an engine): a one-file predict would
#: pay seconds of export for milliseconds of inference. Above it the export is paid once per
#: machine (cached) and the engine chosen is remembered.
AUTO_MIN_ITEMS = 128
#: timed runs of each engine in the race (after one warm-up run each), interleaved; medians compared
TIMED_ROUNDS = 3
#: a remembered choice is timed again against the runner-up of its race every this many runs
RECHECK_EVERY = 5
#: real batches each engine runs in such a check (alternating), after one warm-up of the runner-up
RECHECK_ROUNDS = 3
#: the runner-up must be this much faster (median seconds per sample) to replace the remembered choice
RECHECK_MARGIN = 0.05
#: batches a run must have for a recheck: the check costs about two batches' time (the runner-up's
#: session and warm-up, its slower batches, both engines without their buffers meanwhile) — 12% of a
#: 12-batch run of `benchmarks/extract.py` (auto 37.5 img/s against its own engine forced 42.6), ~3% of 64
RECHECK_MIN_BATCHES = 64
#: the folder beside a graph where OpenVINO keeps the models it compiled from it (imported, not
#: compiled again, by every later extraction call and process on this machine)
OPENVINO_CACHE = "openvino-compiled"
#: written there when a model imported from it did not give the compiled one's features: not used again
OPENVINO_UNTRUSTED = "untrusted.json"
#: preference when timings are not taken (fastest first on the CPUs measured)
_ORDER = ("openvino", "onnxruntime", "torch")
#: the order the engines race in under auto, each candidate against the fastest so far (every candidate races
#: in any order; the order sets which two are alive at once): torch first (its model is the backbone itself,
#: no engine of its own), then ONNX Runtime (fp32 only), then OpenVINO's precisions. ONNX Runtime raced last
#: ran beside OpenVINO's compiled model, and a first text fit of 3,000 texts peaked there (MiniLM's session,
#: ~0.1 GB, and its run of the 32 longest texts, ~0.09 GB, over OpenVINO bf16's model: 1.53 GB); raced first
#: it runs beside torch alone (its model is the backbone's own)
_RACE_ORDER = ("torch", "onnxruntime", "openvino")
#: rows a graph engine runs at a time for large rows (`GraphEngine`): a batch of 32 EfficientNet-Lite0 images
#: run as 4 runs of 8 grew the process by 97 MB on OpenVINO instead of 362 (ONNX Runtime: 151 MB instead of
#: 512), and extraction of 480 images ran 1.14x (OpenVINO) and 1.09x (ONNX Runtime) as fast, the same
#: features bit for bit (medians of 5 alternating runs in one process, shared 2-core AVX-512 EPYC, load 2-4).
#: MiniLM's texts in runs of 8 ran 0.88x / 0.93x: texts are not split (`GRAPH_CHUNKED_ROW_BYTES`)
GRAPH_ROWS = 8
#: a batch is split into runs of `GRAPH_ROWS` only when its rows are at least this large (inputs a row): an
#: image at 224 px is 588 KiB in float32, a text's token ids a few KiB, an audio partial 25 KiB
GRAPH_CHUNKED_ROW_BYTES = 64 * 1024
#: an extraction call of at least this many inputs runs OpenVINO for throughput (`OpenVINORunner`): streams
#: of its threads, one run of `STREAM_ROWS` rows in flight on each
THROUGHPUT_MIN_ITEMS = 64
#: rows of a run on one of OpenVINO's streams: a stream runs on one or few threads, and the fewer the rows, the
#: more of a run's activations stay in its core's cache. EfficientNet-Lite0, batches of 32 (model only, 2 streams
#: of 1 thread, 2-core AVX-512 EPYC, medians of 7, load 5-6): runs of 1, 2, 4, 8 rows 9.7, 9.3, 10.1, 10.9
#: core-ms an image (the latency hint, 2 threads, runs of 8: 12.9; of 2: 13.9); the same features bit for bit
STREAM_ROWS = 2
#: parity checks passed in this process: (graph key digest, graph file, calibration, engine, precision,
#: device, channels_last) → the least cosine measured. PyTorch's reference beside the engine's session
#: and first batch is what a fit's later extraction calls peaked on (~+70 MB on EfficientNet-Lite0,
#: and ~1 core-s a call): a graph that passed here is not checked again in this process.
_VERIFIED: dict[tuple[object, ...], float] = {}


class BatchEngine(ABC):
    """Runs one collated batch to float32 features [B, num_features] on the CPU (or the device)."""

    engine: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"

    @abstractmethod
    def __call__(self, batch: object) -> torch.Tensor: ...

    def start(self, batch: object) -> Callable[[], torch.Tensor]:
        """`self(batch)` started: its features, once the returned function is called. Here the batch runs
        before this returns; an engine on OpenVINO's streams returns once the batch's runs are queued, so that
        the caller can get the next batch ready meanwhile (collect each batch before starting the one after)."""
        out = self(batch)
        return lambda: out

    def keep_buffers(self, keep: bool) -> None:  # noqa: B027  - torch frees a batch's tensors as it goes
        """Whether a batch's intermediate tensors are kept for the next call (the default, and the fast
        way to run batch after batch) or given back after each call: while two engines take turns (a
        race, a recheck), each one's buffers would otherwise sit idle beside the other's (an
        onnxruntime session and an OpenVINO compiled model each keep ~0.4-0.5 GB for batches of 32
        EfficientNet-Lite0 images)."""

    def done(self) -> None:  # noqa: B027  - a torch engine is the backbone itself: nothing to keep
        """The extraction call is over: what a later call of this process can use again is kept
        (a graph engine's compiled model or session, `engines.run.keep`)."""


class TorchEngine(BatchEngine):
    """The backbone in PyTorch: `forward_features` under inference mode, bf16 autocast or fp32.

    A batch of large rows (a tensor of images: `GRAPH_CHUNKED_ROW_BYTES` a row or more) runs `GRAPH_ROWS`
    rows at a time, as on the graph engines: its activations scale with the rows of a run. EfficientNet-Lite0,
    32 images at 224 px: peak 1.03 GB instead of 1.38-1.41 in fp32 and 0.97-0.98 instead of 1.14-1.18 in bf16,
    at 0.40-0.47 s against 0.44-0.50 (fp32) and 0.17-0.19 against 0.20-0.26 (bf16) a batch (medians of 5, two
    processes each way, quiet AVX-512 BF16 EPYC). Texts and other inputs run whole."""

    engine = "torch"

    def __init__(self, model: Backbone, precision: str, device: torch.device, channels_last: bool) -> None:
        self.model, self.precision, self.device, self.channels_last = model, precision, device, channels_last

    def __call__(self, batch: object) -> torch.Tensor:
        x = self.model.to_batch_device(batch, self.device)
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.precision, self.device):
            if (isinstance(x, torch.Tensor) and x.dim() == 4
                    and _in_runs(len(x), x[0].numel() * x.element_size(), GRAPH_ROWS)):
                return torch.cat([self.model.forward_features(x[i:i + GRAPH_ROWS]).float().cpu()
                                  for i in range(0, len(x), GRAPH_ROWS)])
            return self.model.forward_features(x).float().cpu()


class GraphEngine(BatchEngine):
    """The backbone's exported graph on a numpy runner, with its torch pre/post steps around it.

    A batch of large rows (images: `GRAPH_CHUNKED_ROW_BYTES` of inputs a row or more) is run
    `GRAPH_ROWS` rows at a time when every input's first axis is the graph's dynamic batch axis: the
    engine's buffers scale with the rows of a run. On a runner with several streams (OpenVINO opened for
    throughput), large rows run `STREAM_ROWS` at a time and small ones (texts) `GRAPH_ROWS`, one run in
    flight per stream, each run cut to what its rows need (`GraphParts.trim`: a run of texts without the
    padding past its own longest). On one stream, small rows (texts, audio partials) run whole: a run of 8 texts
    was slower than one of 32 there, and their buffers are small."""

    def __init__(self, parts: GraphParts, runner: GraphRunner) -> None:
        self.parts, self.runner = parts, runner
        self.engine, self.precision = runner.engine, runner.precision
        self.chunked = _batch_axis_dynamic(parts, runner.input_names)

    def keep_buffers(self, keep: bool) -> None:
        self.runner.release_after_run = not keep

    def done(self) -> None:
        keep(self.runner)

    def __call__(self, batch: object) -> torch.Tensor:
        return self.start(batch)()

    def start(self, batch: object) -> Callable[[], torch.Tensor]:
        with torch.inference_mode():
            inputs, context = self.parts.prepare(batch)
            arrays = {n: inputs[n].detach().cpu().numpy() for n in self.runner.input_names}
            rows = self._start(arrays)

        def collect() -> torch.Tensor:
            with torch.inference_mode():
                return self.parts.finish(torch.from_numpy(rows()), context).float()

        return collect

    def _start(self, arrays: dict[str, np.ndarray]) -> Callable[[], np.ndarray]:
        sizes = {len(a) for a in arrays.values()}
        n = sizes.pop() if len(sizes) == 1 else 0
        row_bytes = sum(a.nbytes for a in arrays.values()) // max(1, n)
        if self.runner.parallel_runs > 1:  # streams: small rows (texts) too, `GRAPH_ROWS` a run
            rows = STREAM_ROWS if row_bytes >= GRAPH_CHUNKED_ROW_BYTES else GRAPH_ROWS
            split = n > rows
        else:
            rows = GRAPH_ROWS
            split = _in_runs(n, row_bytes, rows)
        if not (self.chunked and split):
            whole = self.runner(arrays)
            return lambda: whole
        runs = [{name: a[i:i + rows] for name, a in arrays.items()} for i in range(0, n, rows)]
        trim = self.parts.trim
        outs = self.runner.start_all([trim(run) for run in runs] if trim is not None else runs)
        return lambda: np.concatenate(outs())


def _in_runs(rows: int, row_bytes: int, run_rows: int) -> bool:
    """Whether a batch of `rows` rows of `row_bytes` bytes of input each runs `run_rows` rows at a time."""
    return rows > run_rows and row_bytes >= GRAPH_CHUNKED_ROW_BYTES


@dataclass
class Selection:
    """The engine chosen, its features of the first batch, and what the user should be told."""

    engine: BatchEngine
    first: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)
    min_cosine: float | None = None
    #: measured on the first batch: label → samples/s (only when a race was run)
    rates: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    """The inputs int8 quantization calibrates on: a digest (part of the graph key) and the
    samples themselves (read only when the int8 graph is not cached yet)."""

    digest: str
    samples: Callable[[], Iterable[object]]


def check_request(engine: str, precision: str) -> None:
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got '{engine}'")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'")


def _precisions(engine: str, precision: str, device: torch.device) -> list[str]:
    """Precisions `engine` may run at for the requested `precision` on this hardware."""
    if precision == "int8":
        return ["int8"] if engine == "openvino" else []
    native_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_supports_bf16()
    wanted = ["fp32"] if precision == "fp32" else ["bf16"] if precision == "bf16" else ["fp32", "bf16"]
    if precision == "auto" and not native_bf16:
        wanted = ["fp32"]
    if engine == "onnxruntime":
        return [p for p in wanted if p == "fp32"]
    if engine == "openvino" and "bf16" in wanted:
        if not openvino_has_bf16():
            wanted = [p for p in wanted if p != "bf16"]
        elif precision == "auto":
            # where the CPU runs bf16 natively, OpenVINO's CPU plugin runs bf16 by default (its docs: bf16 "is
            # automatically used instead of f32"), and it raced at least as fast as OpenVINO fp32 on every graph
            # an AVX-512 BF16 machine here had raced both on (218/s against 114, 588 against 283, 248 against 172,
            # 206 against 203): `auto` races it alone. Both alive at once had been a text fit's peak (two compiled
            # models of one cached blob: 1450 MB in the race, in process, against 1263 with bf16 alone)
            wanted = ["bf16"]
    return wanted


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-12).min())


def _warn(selection: Selection, message: str) -> None:
    selection.notes.append(message)
    warnings.warn(message, EngineWarning, stacklevel=4)


def _machine_signature() -> str:
    """What makes engine speeds differ between machines: CPU model, its vector flags, threads."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    keep = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")
                    flags = ",".join(f for f in line.split(":", 1)[1].split() if f in keep)
                    break
    except OSError:
        pass
    model = model or platform.processor()
    versions = []
    for engine, module in PACKAGES.items():
        if is_installed(engine):
            try:
                versions.append(f"{engine}={__import__(module).__version__}")
            except Exception:  # a broken install is not a signature
                versions.append(f"{engine}=?")
    return f"{model}|{flags}|threads={torch.get_num_threads()}|{'|'.join(versions)}"


class _Remembered:
    """The engine `auto` chose for a (graph, request, batch size, machine): one small JSON file with
    the runner-up of its race and how many runs have used it since it was last timed."""

    def __init__(self, root: str | Path | None, ident: JSONObject) -> None:
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        self.path = engines_dir(root) / "choices" / f"{digest}.json"

    def _read(self) -> JSONObject:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self) -> str | None:
        """The choice remembered; None for none, and for a record whose runner-up is the choice itself (written
        before aa08abc): it could never be checked again, so it is raced anew and replaced."""
        data = self._read()
        choice = data.get("choice")
        return str(choice) if choice and choice != data.get("runner_up") else None

    def runner_up(self) -> str | None:
        other = self._read().get("runner_up")
        return str(other) if other else None

    def recheck_due(self, items_to_extract: int | None, batch: int) -> bool:
        """Whether this run times the choice against the runner-up again: every `RECHECK_EVERY`
        runs, when the run has enough batches for the check to cost little (`RECHECK_MIN_BATCHES`;
        and a runner-up is known)."""
        data = self._read()
        batches = max(RECHECK_MIN_BATCHES, 2 * RECHECK_ROUNDS + 4)
        enough = items_to_extract is not None and items_to_extract >= batch * batches
        return bool(data.get("runner_up")) and enough and int(data.get("uses", 0)) + 1 >= RECHECK_EVERY

    def count_use(self) -> None:
        data = self._read()
        if data:
            data["uses"] = int(data.get("uses", 0)) + 1
            self._write(data)

    def put(self, label: str, rates: dict[str, float], runner_up: str | None = None) -> None:
        self._write({"choice": label, "samples_per_s": rates, "runner_up": runner_up, "uses": 0})

    def _write(self, data: JSONObject) -> None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the next run a race
            write_json_atomic(self.path, data)


@dataclass
class _Request:
    """What `select_engine` was asked: the backbone, its first batch and the engine wanted."""

    backbone: Backbone
    model: Callable[[], Backbone]
    samples: Sequence[object]
    engine: str
    precision: str
    device: torch.device
    channels_last: bool
    root: str | Path | None
    items_to_extract: int | None
    calibration: Calibration | None


@dataclass
class _Plan:
    """The engines to try, in order, and whether they race or a remembered choice is checked again."""

    engines: list[str]
    candidates: list[tuple[str, str]]
    parts: GraphParts | None = None
    remembered: _Remembered | None = None
    choice: str | None = None
    race: bool = False
    recheck: bool = False
    #: the graph's key (`graph_key`), when there is a graph to export
    key: JSONObject | None = None
    #: OpenVINO runs the graph for throughput (`_throughput`)
    throughput: bool = False
    #: where parity is memoised: candidate label → its key in `_VERIFIED` (none without a graph key)
    keys: dict[str, tuple[object, ...]] = field(default_factory=dict)
    #: candidate label → the cosine its parity check passed with earlier in this process (all or none used)
    verified: dict[str, float] = field(default_factory=dict)


@dataclass
class _Trial:
    """What the candidates did on the first batch."""

    agreeing: list[tuple[BatchEngine, float]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # what the user must be told
    quiet: list[str] = field(default_factory=list)  # bf16/int8 too far off under auto: expected on some models
    head_out: dict[str, torch.Tensor] = field(default_factory=dict)
    #: the one candidate ran the whole first batch (its first rows checked): its features are the batch's
    whole: bool = False
    best: _Timed | None = None  # under a race, only the fastest so far is kept (bounded memory)


def select_engine(
    backbone: Backbone,
    model: Callable[[], Backbone],
    samples: Sequence[object],
    *,
    engine: str = ENGINE.default,
    precision: str = PRECISION.default,
    device: torch.device | None = None,
    channels_last: bool = True,
    root: str | Path | None = None,
    items_to_extract: int | None = None,
    calibration: Calibration | None = None,
) -> Selection:
    """Choose the engine for extracting `backbone`'s features, on the first batch's `samples`.

    `model()` gives what the torch engine runs (e.g. `backbone.for_inference()`, made only if a
    torch candidate is tried); `backbone` is the reference and what a graph is exported from.
    `root` is the cache root (exported graphs under `root/engines`).
    """
    check_request(engine, precision)
    device = device or torch.device("cpu")
    if backbone.native_engine is not None:
        return _native(backbone, engine, precision, device)
    request = _Request(backbone, model, samples, engine, precision, device, channels_last, root, items_to_extract,
                       calibration)
    trim_heap()  # what the caller freed (a fit's head, the last call's engine) goes back before engines are built
    head = backbone.collate(list(samples[:PARITY_SAMPLES]))
    # the reference is the backbone itself in fp32 (channels_last inputs: same numbers, ~2x faster)
    selection = Selection(engine=TorchEngine(backbone, "fp32", device, channels_last=True))
    plan = _plan(request, selection)
    reference = _Reference(selection.engine, head)
    if len(plan.verified) < len(plan.candidates):  # a candidate not checked in this process yet
        plan.verified.clear()
        reference.features()  # made now, before any engine is built beside it
    else:
        selection.notes.append(
            f"parity with PyTorch fp32 checked earlier in this process ({', '.join(plan.verified)}: min cosine "
            f"{min(plan.verified.values()):.6f}), not again"
        )
    trial = _try_candidates(request, plan, head, reference, selection)
    del head, reference
    selection.notes.extend(f"{reason}; not used" for reason in trial.quiet)
    if not trial.agreeing:
        return _fall_back(request, trial, selection)
    if trial.rejected:
        _warn(selection, f"{'; '.join(trial.rejected)}: not used")
    if trial.best is not None:
        return _race_winner(request, plan, trial.best, selection)
    return _agreeing(request, plan, trial, selection)


def _plan(request: _Request, selection: Selection) -> _Plan:
    """The candidates (engine × precision) to try: the request, what is installed, whether the
    backbone exports a graph, and the choice remembered here (the only candidate when there is one)."""
    backbone, engine, precision = request.backbone, request.engine, request.precision
    engines = _engines_to_try(engine, precision, request.device, selection)
    plan = _Plan(engines=engines, candidates=[])
    if any(e != "torch" for e in engines):
        try:
            plan.parts = backbone.graph_parts()
        except Exception as exc:
            if engine != "auto":
                raise
            # said, not warned: under auto, torch is a fine answer for a model with no graph to export
            selection.notes.append(f"engine auto: '{backbone.name}' has no exportable graph ({exc}); using torch")
            plan.engines = ["torch"]
    if plan.parts is not None:
        plan.key = graph_key(backbone, plan.parts)
        plan.throughput = _throughput(request, plan.parts)
    if plan.key is not None and engine == "auto":
        key = plan.key
        plan.remembered = _Remembered(request.root, {
            "graph": key_digest(key), "precision": precision, "batch": len(request.samples),
            "machine": _machine_signature(),
        })
        plan.choice = plan.remembered.get()
        small = request.items_to_extract is not None and request.items_to_extract < AUTO_MIN_ITEMS
        if plan.choice is None and small and not (graph_folder(backbone, key, request.root) / "model.onnx").is_file():
            plan.engines = ["torch"]
    plan.candidates = _all_candidates(plan.engines, precision, request.device)
    if plan.choice is not None:
        plan.candidates = [c for c in plan.candidates if f"{c[0]} {c[1]}" == plan.choice] or plan.candidates
    if not plan.candidates:
        raise ConfigError(
            f"engine '{engine}' cannot run precision '{precision}' here: onnxruntime runs fp32; "
            "bf16 needs a CPU with native bf16 (AVX512-BF16/AMX) for openvino; int8 runs on openvino. "
            "Use precision 'auto' or 'fp32', or another engine."
        )
    plan.race = engine == "auto" and len(plan.candidates) > 1 and any(name != "torch" for name, _ in plan.candidates)
    _plan_recheck(request, plan)
    _plan_verified(request, plan)
    return plan


def _plan_verified(request: _Request, plan: _Plan) -> None:
    """The candidates' keys in `_VERIFIED`, and the cosines of those that passed earlier in this process.

    The key holds what the features depend on: the graph key (weights as they are in memory, so a
    fine-tuned copy is checked again; preprocessing; inputs; torch version), the exported graph file
    (its folder, size and time: a graph exported again is checked again), the int8 calibration,
    the engine, the precision, the device, the input layout and whether OpenVINO runs for throughput.
    No graph key (no graph to export): no memo, every call is checked."""
    key = plan.key
    if key is None:
        return
    model = graph_folder(request.backbone, key, request.root) / "model.onnx"
    try:
        stat = model.stat()
        graph: tuple[object, ...] = (str(model), stat.st_size, stat.st_mtime_ns)
    except OSError:
        graph = (str(model), None)
    calibration = request.calibration.digest if request.calibration is not None else None
    for name, prec in plan.candidates:  # OpenVINO compiled for throughput: another compiled model
        label = f"{name} {prec}"
        plan.keys[label] = (key_digest(key), graph if name != "torch" else None,
                            calibration if prec == "int8" else None, name, prec, str(request.device),
                            request.channels_last, plan.throughput and name == "openvino")
        if plan.keys[label] in _VERIFIED:
            plan.verified[label] = _VERIFIED[plan.keys[label]]


def _plan_recheck(request: _Request, plan: _Plan) -> None:
    """Every `RECHECK_EVERY` runs the remembered choice is tried again beside the runner-up of its race."""
    remembered, choice = plan.remembered, plan.choice
    if remembered is None or choice is None or not remembered.recheck_due(request.items_to_extract,
                                                                           len(request.samples)):
        return
    runner_up = remembered.runner_up()
    pair = [c for c in _all_candidates(plan.engines, request.precision, request.device)
            if f"{c[0]} {c[1]}" in (choice, runner_up)]
    plan.candidates = sorted(pair, key=lambda c: f"{c[0]} {c[1]}" != choice)  # the choice first
    plan.recheck = len(plan.candidates) == 2


class _Reference:
    """PyTorch fp32's features of the first samples, made once, when first asked for."""

    def __init__(self, engine: BatchEngine, head: object) -> None:
        self.engine, self.head = engine, head
        self.out: torch.Tensor | None = None

    def features(self) -> torch.Tensor:
        if self.out is None:
            self.out = self.engine(self.head)
        return self.out


def _try_candidates(request: _Request, plan: _Plan, head: object, reference: _Reference,
                    selection: Selection) -> _Trial:
    """Each candidate, built one at a time, on the first samples (parity with `reference`); under a
    race the ones that agree are timed on the whole first batch, and only the fastest so far is kept."""
    batch = request.backbone.collate(list(request.samples)) if plan.race else None
    trial = _Trial()
    # one candidate, no race (a remembered choice, an engine named): it runs the whole first batch once
    # and its first rows are checked, instead of the first samples and then the batch again
    trial.whole = batch is None and len(plan.candidates) == 1 and len(request.samples) > PARITY_SAMPLES
    if trial.whole:
        head = request.backbone.collate(list(request.samples))
    for candidate in _built(request, plan, selection):
        cosine = _parity(request, plan, candidate, head, reference, trial)
        if cosine is not None and batch is None:
            trial.agreeing.append((candidate, cosine))
        elif cosine is not None:
            trial.best = _race(trial.best, _Timed(candidate, cosine), batch, selection.rates)
            trial.agreeing = [(trial.best.engine, trial.best.cosine)]
        del candidate  # a loser or a candidate that disagrees is let go before the next one is built
    return trial


def _parity(request: _Request, plan: _Plan, candidate: BatchEngine, head: object, reference: _Reference,
            trial: _Trial) -> float | None:
    """The least cosine of `candidate`'s features of the first samples to `reference`'s; None (and
    the reason kept) when it fails on them or is too far. A candidate that passed earlier in this
    process (`plan.verified`): the cosine it passed with then, once it has run on them."""
    try:
        trial.head_out[candidate.label] = candidate(head)
        if candidate.label in plan.verified:
            return plan.verified[candidate.label]
        expected = reference.features()
        cosine = _cosine(trial.head_out[candidate.label][:len(expected)], expected)
    except Exception as exc:
        trial.rejected.append(f"{candidate.label} failed on the first batch ({type(exc).__name__}: {str(exc)[:200]})")
        return None
    key = plan.keys.get(candidate.label)
    if key is not None and cosine >= MIN_COSINE[candidate.precision]:
        if len(_VERIFIED) > 64:
            _VERIFIED.clear()
        _VERIFIED[key] = cosine
    if cosine < MIN_COSINE[candidate.precision]:
        reason = (f"{candidate.label} disagrees with PyTorch fp32 on the first batch (min cosine {cosine:.6f} "
                  f"< {MIN_COSINE[candidate.precision]})")
        told = request.engine != "auto" or candidate.precision == "fp32"
        (trial.rejected if told else trial.quiet).append(reason)
        return None
    return cosine


def _fall_back(request: _Request, trial: _Trial, selection: Selection) -> Selection:
    """No candidate agreed with PyTorch fp32: torch fp32 it is (int8 asked for: an error instead)."""
    if request.precision == "int8":
        raise EngineError(
            f"the int8 graph of '{request.backbone.name}' is too far from PyTorch fp32 on the first batch "
            f"({'; '.join(trial.rejected + trial.quiet)}): quantization lost too much here; use precision 'fp32'"
        )
    # what the candidates that failed held (a session, a compiled model, their buffers) goes back before the
    # torch copy is made (`_built` gives it back between candidates only when there were several)
    trial.head_out.clear()
    release_memory()
    selection.engine = TorchEngine(request.model(), "fp32", request.device, request.channels_last)
    selection.min_cosine = 1.0
    _warn(selection, f"{'; '.join(trial.rejected or trial.quiet)}: falling back to torch fp32")
    return selection


def _race_winner(request: _Request, plan: _Plan, best: _Timed, selection: Selection) -> Selection:
    """The fastest of the race, said with every candidate's rate and remembered with its runner-up."""
    selection.engine, selection.min_cosine, selection.first = best.engine, best.cosine, best.out
    ranked = sorted(selection.rates.items(), key=lambda kv: -kv[1])
    rates = ", ".join(f"{label} {rate:.0f}/s" for label, rate in ranked)
    selection.notes.append(f"engine {request.engine} chose {best.engine.label} (first batch, median of "
                           f"{TIMED_ROUNDS} interleaved runs after a warm-up: {rates})")
    if plan.remembered is not None and len(ranked) > 1:
        # the fastest of the others: each rate is from the last pairwise race its engine ran, so on a busy machine
        # a loser's earlier rate can top the list, and the second of the list can be the winner itself
        runner_up = next(label for label, _ in ranked if label != best.engine.label)
        plan.remembered.put(best.engine.label, selection.rates, runner_up=runner_up)
    return selection


def _agreeing(request: _Request, plan: _Plan, trial: _Trial, selection: Selection) -> Selection:
    """No race: the candidate asked for (or remembered) that agrees; two torch precisions: bf16; a
    remembered choice due for a check: both it and the runner-up, behind `Rechecked`."""
    agreeing = trial.agreeing
    if len(agreeing) > 1 and all(c.engine == "torch" for c, _ in agreeing):
        # torch alone: no race, so that the same data gives the same features run after run; bf16
        # where it agrees (on CPUs with native bf16 it is ~1.7x faster than fp32, measured)
        agreeing = sorted(agreeing, key=lambda pair: pair[0].precision != "bf16")[:1]
    remembered = plan.remembered
    if plan.recheck and remembered is not None and len(agreeing) == 2:
        chosen_engine, cosine = agreeing[0]
        selection.engine = Rechecked(chosen_engine, agreeing[1][0], remembered, selection.notes)
        selection.min_cosine = min(cosine, agreeing[1][1])
        return selection
    selection.engine, selection.min_cosine = agreeing[0]
    if len(request.samples) <= PARITY_SAMPLES or trial.whole:  # it ran the whole batch: its features are done
        selection.first = trial.head_out[selection.engine.label]
    if request.engine == "auto" and plan.choice is not None:
        if selection.engine.engine != "torch":
            selection.notes.append(f"engine auto: {selection.engine.label} (chosen on this machine before)")
        if remembered is not None:
            remembered.count_use()
    return selection


@dataclass
class _Timed:
    """A candidate of the race: its engine, its parity, its features of the race batch, its times."""

    engine: BatchEngine
    cosine: float
    out: torch.Tensor | None = None
    seconds: list[float] = field(default_factory=list)

    def run(self, batch: object) -> None:
        """One timed run of the race; then the heap's free pages go back to the OS (not timed). Without it
        what a run freed stayed in the process beside the other engine: ONNX Runtime's MiniLM session grew
        ~16 MB a run though its arena shrinks after each (glibc kept the pages), and a text fit peaked in
        this race (ONNX Runtime beside OpenVINO bf16: 1.61 GB); with it both went back to their size after
        opening (+91 MB and +166 MB over the process, runs of the 32 longest texts)."""
        start = time.perf_counter()
        self.out = self.engine(batch)
        self.seconds.append(time.perf_counter() - start)
        trim_heap()


def _race(best: _Timed | None, challenger: _Timed, batch: object, rates: dict[str, float]) -> _Timed:
    """The faster of `best` and `challenger` on `batch`: one warm-up run each, then `TIMED_ROUNDS`
    runs interleaved (A B A B …: a burst of load on a shared machine hits both alike), medians
    compared. The loser is dropped by the caller: at most two engines are alive at once, and neither
    keeps its buffers between its runs (each run allocates them, as both engines' runs do alike); the
    winner keeps them again."""
    for timed in (best, challenger):
        if timed is not None:
            timed.engine.keep_buffers(False)
    challenger.run(batch)  # warm-up: first-call allocations, lazy compilation, caches
    challenger.seconds.clear()
    if best is None:
        for _ in range(TIMED_ROUNDS):
            challenger.run(batch)
    else:
        best.seconds = best.seconds[-TIMED_ROUNDS:]
        for _ in range(TIMED_ROUNDS):
            best.run(batch)
            challenger.run(batch)
        best.seconds = best.seconds[-TIMED_ROUNDS:]
    n = _batch_len(batch, challenger.out)
    for timed in (best, challenger):
        if timed is not None:
            rates[timed.engine.label] = n / max(float(np.median(timed.seconds)), 1e-9)
    winner = challenger if best is None or np.median(challenger.seconds) < np.median(best.seconds) else best
    winner.engine.keep_buffers(True)
    return winner


def _batch_len(batch: object, out: torch.Tensor | None) -> int:
    return int(out.shape[0]) if out is not None else 1


class Rechecked(BatchEngine):
    """The engine remembered for this machine, timed against the runner-up of its race on real batches.

    The first batch warms the runner-up; the next `2 * RECHECK_ROUNDS` batches alternate between
    the two (each engine's features agree with PyTorch's: both passed the parity check), and the
    medians of their seconds per sample decide. A choice that stops winning by `RECHECK_MARGIN` is
    forgotten: the runner-up takes over for the rest of the run and is remembered instead. The
    loser is dropped, so two engines are alive only during the check."""

    def __init__(self, chosen: BatchEngine, runner_up: BatchEngine, remembered: _Remembered,
                 notes: list[str]) -> None:
        self.current: BatchEngine | None = chosen
        self.chosen: BatchEngine | None = chosen
        self.runner_up: BatchEngine | None = runner_up
        self.remembered, self.notes = remembered, notes
        self.engine, self.precision = chosen.engine, chosen.precision
        self.seconds: dict[str, list[float]] = {chosen.label: [], runner_up.label: []}
        self.calls = 0
        for engine in (chosen, runner_up):  # taking turns: neither keeps its buffers while the other runs
            engine.keep_buffers(False)

    def __call__(self, batch: object) -> torch.Tensor:
        if self.runner_up is None or self.chosen is None:
            assert self.current is not None
            return self.current(batch)
        self.calls += 1
        if self.calls == 1:  # warm-up of the runner-up (its first call allocates)
            return self.runner_up(batch)
        which = self.chosen if self.calls % 2 == 0 else self.runner_up
        start = time.perf_counter()
        out = which(batch)
        self.seconds[which.label].append((time.perf_counter() - start) / max(1, int(out.shape[0])))
        if self.calls > 2 * RECHECK_ROUNDS:
            self._decide()
        return out

    def start(self, batch: object) -> Callable[[], torch.Tensor]:
        if self.runner_up is None and self.current is not None:  # decided: as the engine it went on with runs
            return self.current.start(batch)
        out = self(batch)  # timed batch by batch
        return lambda: out

    def done(self) -> None:
        if self.current is not None and self.runner_up is None:  # decided: the engine the run went on with
            self.current.done()

    def _decide(self) -> None:
        assert self.chosen is not None and self.runner_up is not None
        kept, other = self.chosen.label, self.runner_up.label
        a, b = (float(np.median(self.seconds[label])) for label in (kept, other))
        rates = {kept: 1 / max(a, 1e-12), other: 1 / max(b, 1e-12)}
        if b < a * (1 - RECHECK_MARGIN):
            self.current = self.runner_up
            self.remembered.put(other, rates, runner_up=kept)
            self.notes.append(f"engine auto: {kept} (chosen on this machine before) stopped winning on this run's "
                              f"batches ({rates[kept]:.0f}/s against {other} {rates[other]:.0f}/s); switched to "
                              f"{other}, remembered from now on")
        else:
            self.current = self.chosen
            self.remembered.put(kept, rates, runner_up=other)
            self.notes.append(f"engine auto: {kept} (chosen on this machine before), checked again on this run's "
                              f"batches against {other}: {rates[kept]:.0f}/s against {rates[other]:.0f}/s; kept")
        self.engine, self.precision = self.current.engine, self.current.precision
        self.current.keep_buffers(True)
        self.chosen = self.runner_up = None
        release_memory()


def _all_candidates(engines: list[str], precision: str, device: torch.device) -> list[tuple[str, str]]:
    return [(e, p) for e in engines for p in _precisions(e, precision, device)]


def _native(backbone: Backbone, engine: str, precision: str, device: torch.device) -> Selection:
    """A backbone that runs on its own engine: run it as it is, and say so when asked otherwise."""
    runner = TorchEngine(backbone, "fp32", device, channels_last=False)
    runner.engine = str(backbone.native_engine)
    selection = Selection(engine=runner, min_cosine=1.0)
    if engine not in ("auto", runner.engine):  # an engine asked for by name that it cannot run on: warned
        _warn(selection, f"'{backbone.name}' runs on its own engine ({runner.engine}, as it ships); engine "
                         f"'{engine}' does not apply to it, it ran as it is")
    elif precision not in ("auto", "fp32"):  # e.g. bf16 chosen for the CPU: it runs exactly (fp32), said
        selection.notes.append(f"'{backbone.name}' runs on its own engine ({runner.engine}) in fp32; precision "
                               f"'{precision}' does not apply to it")
    return selection


def _engines_to_try(engine: str, precision: str, device: torch.device, selection: Selection) -> list[str]:
    if device.type != "cpu":
        if engine not in ("auto", "torch"):
            raise ConfigError(f"engine '{engine}' runs on the CPU; got device '{device}'. Use engine 'torch'.")
        return ["torch"]
    if precision == "int8":
        if engine not in ("auto", "openvino"):
            raise ConfigError(f"precision 'int8' runs on engine openvino (or auto); got engine '{engine}'")
        if not is_installed("openvino"):
            raise EngineError(
                "precision 'int8' runs on OpenVINO, which is not installed: pip install 'transferkit[int8]'"
            )
        return ["openvino"]
    if engine == "auto":
        return [e for e in _RACE_ORDER if e == "torch" or is_installed(e)]
    if is_installed(engine):
        return [engine]
    fallback = next((e for e in _ORDER if e != engine and is_installed(e) and _precisions(e, precision, device)),
                    "torch")
    _warn(selection, f"engine '{engine}' is not installed (pip install {PACKAGES.get(engine, engine)}); "
                     f"running on {fallback} instead")
    return [fallback]


def _built(request: _Request, plan: _Plan, selection: Selection) -> Iterator[BatchEngine]:
    """An engine per candidate, one at a time: the one handed out last is let go (here, and by the
    caller unless it keeps it) before the next is built, so a race holds at most two; graph
    engines share one exported (cached) graph."""
    count = 0
    graph = _Graph(request, plan.parts, plan.throughput, plan.key)
    for name, prec in plan.candidates:
        built = (TorchEngine(request.model(), prec, request.device, request.channels_last) if name == "torch"
                 else graph.engine(name, prec, selection))
        if built is None:
            continue
        count += 1
        yield built
        del built
        # the candidate the caller did not keep: its session, its buffers (one alone is kept: nothing to
        # give back, and a full gc takes 0.4-0.6 s with transformers loaded, shared 2-core EPYC)
        if len(plan.candidates) > 1:
            release_memory()
    if not count:
        tried = [f"{n} {p}" for n, p in plan.candidates]
        _warn(selection, f"no engine of {tried} could run; falling back to torch fp32")
        yield TorchEngine(request.model(), "fp32", request.device, request.channels_last)


class _Graph:
    """The backbone's exported graph (exported, or read from the cache, on first use) and the
    engines that run it."""

    def __init__(self, request: _Request, parts: GraphParts | None, throughput: bool,
                 key: JSONObject | None = None) -> None:
        self.request, self.parts, self.throughput, self.key = request, parts, throughput, key
        self.path: Path | None = None
        self.failed = False
        self.threads = torch.get_num_threads()

    def engine(self, name: str, precision: str, selection: Selection) -> GraphEngine | None:
        """`name` running the graph at `precision`; None (said) when the graph or the engine fails under auto."""
        request, parts = self.request, self.parts
        if self.failed or parts is None:
            return None
        backbone = request.backbone
        try:
            if self.path is None:
                self.path, reused = backbone_graph(backbone, parts, root=request.root, key=self.key)
                if not reused:
                    release_memory()  # what the export held (a traced program, the graph in memory)
            path = _int8_path(backbone, parts, self.path, request.calibration) if precision == "int8" else self.path
            return self._opened(parts, path, name, precision, selection)
        except EngineError as exc:
            if request.engine != "auto" or request.precision == "int8":
                raise
            _warn(selection, f"engine auto: {exc} Using torch.")
            self.failed = True
        except Exception as exc:  # the engine itself failed to compile or run the graph
            if request.precision == "int8":
                raise EngineError(f"OpenVINO could not run the int8 graph of '{backbone.name}' "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
            _warn(selection, f"{name} could not compile the graph of '{backbone.name}' "
                             f"({type(exc).__name__}: {str(exc)[:200]}); not used")
        return None

    def _opened(self, parts: GraphParts, path: Path, name: str, precision: str, selection: Selection) -> GraphEngine:
        """`name` on the graph at `path`; OpenVINO through its model cache beside the graph, unless that
        cache was found untrustworthy here. A blob this call compiled and wrote is checked at once: the
        compiled model runs the first samples and is let go, the blob is imported and runs them too, and the
        imported model is the engine (what every later run here imports: the same features from the first
        run on). An import that does not give the compiled model's features (seen with OpenVINO 2026.4 on
        GE2E's LSTM, AVX-512 CPU: min cosine 0.57 in fp32; EfficientNet-Lite0 and MiniLM the same bit for bit)
        marks the cache untrusted for this graph, said, and the graph is compiled again, without the cache,
        here and in later runs. One compiled model at a time: MiniLM compiled and imported side by side had
        taken a text fit's race to 1.49 GB (+~0.3 GB over the process before)."""
        cache = path.parent / OPENVINO_CACHE
        if name != "openvino" or _untrusted(cache):
            return self._graph_engine(parts, path, name, precision)
        before = _blobs(cache)
        compiled = self._graph_engine(parts, path, name, precision, cache)
        if not _blobs(cache) - before:
            return compiled
        samples = self.request.backbone.collate(list(self.request.samples[:PARITY_SAMPLES]))
        expected = compiled(samples)
        del compiled
        release_memory()
        imported = self._graph_engine(parts, path, name, precision, cache)
        cosine = _cosine(imported(samples), expected)
        if cosine >= MIN_COSINE["fp32"]:
            return imported
        del imported
        release_memory()
        write_json_atomic(cache / OPENVINO_UNTRUSTED, {
            "why": f"a model imported from this cache gave min cosine {cosine:.6f} to the one compiled "
                   f"({precision}, first samples)", "openvino": _openvino_version()})
        selection.notes.append(f"OpenVINO's model cache does not give the compiled model's features for "
                               f"'{self.request.backbone.name}' here (min cosine {cosine:.4f}): not used, "
                               "the graph is compiled each run")
        return self._graph_engine(parts, path, name, precision)

    def _graph_engine(self, parts: GraphParts, path: Path, name: str, precision: str,
                      cache: Path | None = None) -> GraphEngine:
        """`name` on the graph (`reuse`: the runner an earlier extraction call of this process kept for it, if
        any, `engines.run.keep`)."""
        return GraphEngine(parts, open_graph(path, name, precision, self.threads, cache_dir=cache,
                                             throughput=self.throughput, reuse=True))


def _throughput(request: _Request, parts: GraphParts | None) -> bool:
    """Whether OpenVINO runs the graph for throughput (streams, several runs at once: `OpenVINORunner`)
    rather than for the latency of one run: when the call extracts at least `THROUGHPUT_MIN_ITEMS` inputs
    (a server, and a call that does not say how many, run for latency) whose batches can be cut into runs
    (every input's first axis the dynamic batch axis), of images (rows large enough to run `GRAPH_ROWS` at a
    time) or texts (MiniLM, 600 texts in batches of 32 sorted by length, fp32, 2-core AVX-512 EPYC: 2 streams
    with runs of 8 rows against the latency hint's one run of 32, the model alone, medians of 5 alternating
    rounds at load 4.6-6.7, 146-208 texts/s against 98-156; a whole extraction, medians of 12, 1.13x at load
    4-5 and 0.99x quiet, load 2.1: what streams of one thread each buy is robustness to other work on the
    cores; the same features bit for bit). Audio partials stay on the latency hint (not measured)."""
    if parts is None or request.items_to_extract is None or request.items_to_extract < THROUGHPUT_MIN_ITEMS:
        return False
    inputs = parts.example_inputs()
    rows = {int(t.shape[0]) for t in inputs.values() if t.dim()}
    n = rows.pop() if len(rows) == 1 else 0
    if not (n > 0 and _batch_axis_dynamic(parts, inputs)):
        return False
    return (request.backbone.modality == "text"
            or sum(t.nelement() * t.element_size() for t in inputs.values()) // n >= GRAPH_CHUNKED_ROW_BYTES)


def _batch_axis_dynamic(parts: GraphParts, names: Iterable[str]) -> bool:
    """Whether every input `names` of the graph has its first axis as the graph's dynamic batch axis: a batch
    can then be run a few rows at a time (`GraphEngine`, `_throughput`)."""
    return all(0 in parts.dynamic_axes.get(name, {}) for name in names)


def _blobs(folder: Path) -> set[str]:
    """The compiled models OpenVINO has written in its model cache `folder`."""
    return {p.name for p in folder.glob("*.blob")} if folder.is_dir() else set()


def _untrusted(cache: Path) -> bool:
    """Whether this OpenVINO found its model cache `cache` untrustworthy (another version may not)."""
    try:
        record = json.loads((cache / OPENVINO_UNTRUSTED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # unreadable: as written, untrusted
    return not isinstance(record, dict) or record.get("openvino") == _openvino_version()


def _openvino_version() -> str:
    import openvino as ov

    return str(ov.get_version())


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise: an exported graph or a
    dropped engine would stay in the process's RSS for the rest of the run)."""
    import gc

    gc.collect()
    trim_heap()


def _int8_path(backbone: Backbone, parts: GraphParts, graph: Path, calibration: Calibration | None) -> Path:
    from transferkit.engines.quantize import int8_graph

    if calibration is None:
        raise EngineError("precision 'int8' needs calibration inputs (the training inputs)")

    def inputs() -> Iterable[Mapping[str, np.ndarray]]:
        for sample in calibration.samples():
            named, _ = parts.prepare(backbone.collate([sample]))
            yield {n: named[n].detach().cpu().numpy() for n in parts.input_names}

    path, _ = int8_graph(graph, calibration.digest, inputs, transformer=backbone.modality == "text")
    return path
