"""Run an exported ONNX graph with onnxruntime or OpenVINO, on numpy arrays only.

Imports neither torch nor any other part of transferkit (only numpy, the engine itself, and the
leaf `transferkit.errors` when a graph cannot be read), so that a process holding an exported model
needs nothing else to predict. Every runner is called
with a dict of named input arrays and returns the graph's first output as a float32 array.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import importlib.util
import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openvino as ov

#: engine name → the pip package that provides it
PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def is_installed(engine: str) -> bool:
    """Whether `engine` can be imported here (found without importing it)."""
    if engine == "torch":
        return importlib.util.find_spec("torch") is not None
    module = PACKAGES.get(engine)
    return module is not None and importlib.util.find_spec(module) is not None


class GraphRunner(ABC):
    """An exported graph compiled for one engine: named numpy inputs → first output [rows, D]."""

    engine: str
    precision: str
    path: Path
    input_names: tuple[str, ...]
    #: give back a batch's intermediate tensors after each call instead of keeping them for the next
    #: (which then allocates them again): set while another engine runs between this one's calls (a race)
    release_after_run: bool = False

    @abstractmethod
    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    #: runs this runner makes at the same time (`run_all`): 1 unless it was opened for throughput
    parallel_runs: int = 1
    #: what it was opened with (`open_graph(reuse=True)`): a runner with one can be kept for a later call (`keep`)
    reuse_key: tuple[object, ...] | None = None

    def release_buffers(self) -> None:  # noqa: B027  - onnxruntime gives its arena back run by run (`release_after_run`)
        """Give back the buffers of the last run (kept for the next one): the runner is set aside for a while."""

    def run_all(self, runs: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        """The first output of each of `runs` (named inputs each), in order; one after the other here."""
        return [self(inputs) for inputs in runs]

    def start_all(self, runs: Sequence[Mapping[str, np.ndarray]]) -> Callable[[], list[np.ndarray]]:
        """`run_all(runs)` started: what it returns, once the returned function is called. Here the runs are made
        before this returns; a runner opened for throughput returns as soon as they are queued, so that the
        caller can prepare its next runs while these run (they must be collected before the next runs are)."""
        outs = self.run_all(runs)
        return lambda: outs

    def output_width(self) -> int | None:
        """The last dimension of the first output as the graph declares it (None when symbolic)."""
        return None

    def _arrays(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise KeyError(f"graph {self.path.name} needs inputs {list(self.input_names)}; missing {missing}")
        return {n: np.ascontiguousarray(inputs[n]) for n in self.input_names}


class OnnxRuntimeRunner(GraphRunner):
    """ONNX Runtime, CPU provider, all graph optimisations, `threads` intra-op threads (0 = all).

    Threads do not spin while idle: on a few cores the spinning would steal time from the processes
    that decode the next batch. The CPU memory arena stays on: without it the same batches ran 1.20x
    slower here (median of 6 interleaved runs, twice, quiet AVX2 machine), and speed is what the
    engine race chooses on. The memory pattern is off: with it, onnxruntime plans one block for all of
    a batch shape's intermediate tensors beside the arena's own (a session held 886 MB after batches
    of 32 EfficientNet-Lite0 images at 224 px; without it 552 MB, the same features bit for bit and
    no slower: 4.25 s against 4.57 s a batch, median of 8 interleaved runs, shared 2-core EPYC)."""

    engine = "onnxruntime"
    precision = "fp32"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_mem_pattern = False
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph, NoSuchFile…
            raise unreadable_graph(self.path, exc) from exc
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        # what a run gets while `release_after_run`: the arena's chunks go back at its end (the arena stays on)
        self._releasing = ort.RunOptions()
        self._releasing.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def output_width(self) -> int | None:
        shape = self.session.get_outputs()[0].shape
        return shape[-1] if shape and isinstance(shape[-1], int) else None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        options = self._releasing if self.release_after_run else None
        out = self.session.run(None, self._arrays(inputs), options)[0]
        return np.asarray(out, dtype=np.float32)


class _SignalStack(ctypes.Structure):
    """POSIX `stack_t`, as sigaltstack(2) reads and writes it (Linux x86-64 and aarch64 layout)."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Leave this thread's alternate signal stack as it was, whatever runs inside.

    OpenVINO's CPU plugin installs an alternate signal stack of its own on the thread that loads it
    and puts back, when that plugin instance goes, the one it found; with two instances gone in the
    other order the thread is left on freed memory. Python runs every signal handler on that stack
    (SA_ONSTACK), so the next SIGCHLD, e.g. a DataLoader worker finishing, then kills the whole
    process with SIGSEGV (seen in the test suite: an `auto` engine race, then extraction with
    workers). Putting the old stack back after every call into OpenVINO keeps the thread on memory
    that lives.
    """
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = _libc()
    before = _SignalStack()
    saved = libc.sigaltstack(None, ctypes.byref(before)) == 0 and not before.ss_flags & 1  # not SS_ONSTACK
    try:
        yield
    finally:
        if saved:
            libc.sigaltstack(ctypes.byref(before), None)


@functools.lru_cache(maxsize=1)
def openvino_core() -> ov.Core:
    """The one `openvino.Core` of this process: the CPU plugin is loaded once and never unloaded."""
    import openvino as ov

    with keep_signal_stack():
        return ov.Core()


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512-BF16 or AMX)."""
    try:
        with keep_signal_stack():
            return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


class OpenVINORunner(GraphRunner):
    """OpenVINO on the CPU, latency hint, at `precision` (fp32, bf16 where the CPU has it, or int8
    for a quantized graph: its int8 layers run int8, the rest fp32).

    With `throughput`, the throughput hint instead: OpenVINO splits the threads into streams (2 of 1
    thread on 2 cores) and `run_all` keeps one run in flight per stream. No stream waits for another's
    threads, so a core taken a moment by something else (the workers that decode the next batch)
    stalls one run instead of every layer of it, and a stream's small runs stay in its core's cache.
    EfficientNet-Lite0, 384 JPEGs end to end, batches of 32 as runs of 2 rows (`GraphEngine`), 2-core
    AVX-512 EPYC, load ~6: 14.7 core-ms an image against 18.3 with the latency hint (runs of 8), the
    same features bit for bit. A single input runs on one stream's threads: this is for extracting
    many inputs, not for serving one at a time.

    With `cache_dir`, the compiled model is kept there (OpenVINO's model cache, a blob keyed by the
    graph, the configuration, the device and the OpenVINO version) and later runners import it
    instead of compiling again: EfficientNet-Lite0 compiled in 0.35 CPU-s, imported in 0.04-0.05 (3
    alternating runs, shared 2-core EPYC), once per extraction call; the features are the same bit
    for bit. A torn or damaged blob is not trusted: OpenVINO compiles the graph again and rewrites it."""

    engine = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int = 0,
                 cache_dir: str | Path | None = None, throughput: bool = False) -> None:
        if precision not in ("fp32", "bf16", "int8"):
            raise ValueError(f"OpenVINO precision must be fp32, bf16 or int8, got {precision!r}")
        self.path = Path(path)
        self.precision = precision
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "THROUGHPUT" if throughput else "LATENCY",
            # without it OpenVINO runs bf16 on CPUs that have it: fp32 must mean fp32
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if cache_dir is not None:
            config["CACHE_DIR"] = str(cache_dir)
        core = openvino_core()
        with keep_signal_stack():
            try:
                # from the path, not a model read here: with a cached blob the graph is never parsed
                self.compiled = core.compile_model(str(self.path), "CPU", config)
            except Exception as exc:  # a damaged file: OpenVINO raises RuntimeError with its parser's message
                raise unreadable_graph(self.path, exc) from exc
            self.request = self.compiled.create_infer_request()
            if throughput:
                self.parallel_runs = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            # the requests that runs take in turn on the streams (`start_all`), made on first use, and the run
            # each one has in flight (its pending call, its place there, its inputs)
            self._ring: list[ov.InferRequest] = []
            self._slots: list[tuple[_Pending, int, dict[str, np.ndarray]] | None] = []
            self._next = 0
        self.input_names = tuple(port.get_any_name() for port in self.compiled.inputs)

    def output_width(self) -> int | None:
        shape = self.compiled.outputs[0].get_partial_shape()
        last = shape[shape.rank.get_length() - 1] if shape.rank.is_static and shape.rank.get_length() else None
        return int(last.get_length()) if last is not None and last.is_static else None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.run_all([inputs])[0]

    def run_all(self, runs: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        """Each of `runs` on the next free stream (up to `parallel_runs` at once), the outputs in order."""
        return self.start_all(runs)()

    def start_all(self, runs: Sequence[Mapping[str, np.ndarray]]) -> Callable[[], list[np.ndarray]]:
        """`runs` started on the streams, `QUEUED_PER_STREAM` runs a stream at most in flight (the run started that
        many runs before waits for its request first); the function returned waits for them and gives their
        outputs in order. The runs of the next call can be started before it is called. One stream: run here."""
        if self.parallel_runs == 1:
            outs = self._one_by_one(runs)
            return lambda: outs
        if not self._ring:
            with keep_signal_stack():
                self._ring = [self.compiled.create_infer_request()
                              for _ in range(self.QUEUED_PER_STREAM * self.parallel_runs)]
                self._slots = [None] * len(self._ring)
        pending = _Pending(len(runs))
        with keep_signal_stack():
            try:
                for i, inputs in enumerate(runs):
                    slot = self._next
                    self._next = (slot + 1) % len(self._ring)
                    self._deliver(slot)  # its request's last run, put where it goes
                    arrays = self._arrays(inputs)  # read in place by the request: kept alive until it has run
                    self._ring[slot].start_async(arrays, share_inputs=True)
                    self._slots[slot] = (pending, i, arrays)
                    pending.slots.append(slot)
            except BaseException:  # a run that could not start: those started finish before their inputs go
                self._drain()
                raise

        def collect() -> list[np.ndarray]:
            with keep_signal_stack():
                try:
                    for slot in pending.slots:
                        entry = self._slots[slot]
                        if entry is not None and entry[0] is pending:
                            self._deliver(slot)
                except BaseException:
                    self._drain()
                    raise
            if self.release_after_run:
                self.release_buffers()
            return pending.result()

        return collect

    #: runs in flight on each stream at most: one running, one waiting, so that a stream that finishes a run
    #: starts the next one at once (OpenVINO hands a started run to whichever stream is free), not when this
    #: process's thread comes back to hand it over: on 2 cores, shared with the process that decodes the next
    #: images, that thread is often off the CPU, and a stream held up (its core taken by the decoding) leaves
    #: the runs to the other one instead of holding it at its turn
    QUEUED_PER_STREAM = 2

    def _deliver(self, slot: int) -> None:
        """The run in flight on request `slot` (if any) waited for, its output copied where it goes."""
        entry = self._slots[slot]
        if entry is None:
            return
        self._slots[slot] = None
        entry[0].outs[entry[1]] = self._finished(self._ring[slot])

    def _drain(self) -> None:
        """Every run in flight waited for (their outputs dropped): their inputs can go."""
        for slot, entry in enumerate(self._slots):
            if entry is not None:
                self._slots[slot] = None
                with suppress(Exception):
                    self._ring[slot].wait()

    def _one_by_one(self, runs: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
        outs: list[np.ndarray] = []
        with keep_signal_stack():
            for inputs in runs:
                arrays = self._arrays(inputs)  # read in place by the request: kept alive until it is waited for
                self.request.start_async(arrays, share_inputs=True)
                outs.append(self._finished(self.request))
            if self.release_after_run:
                self.compiled.release_memory()
        return outs

    def release_buffers(self) -> None:
        with keep_signal_stack():
            for slot in range(len(self._slots)):  # runs still in flight finish first, their outputs kept
                self._deliver(slot)
            self.compiled.release_memory()

    @staticmethod
    def _finished(request: ov.InferRequest) -> np.ndarray:
        """The output of `request` once its run is done, copied out: the request's next run reuses its buffer."""
        request.wait()
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


class _Pending:
    """The outputs of one `OpenVINORunner.start_all`, filled in as its runs are waited for."""

    def __init__(self, n: int) -> None:
        self.outs: list[np.ndarray | None] = [None] * n
        self.slots: list[int] = []  # the requests its runs were started on

    def result(self) -> list[np.ndarray]:
        outs = [out for out in self.outs if out is not None]
        if len(outs) != len(self.outs):
            raise RuntimeError(f"OpenVINO: {len(self.outs) - len(outs)} of {len(self.outs)} runs gave no output")
        return outs


def unreadable_graph(path: Path, exc: BaseException) -> Exception:
    """One clear error for a graph file an engine cannot read (damaged, truncated, not a graph)."""
    from transferkit.errors import EngineError

    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = lines[0][:200] if lines else type(exc).__name__
    try:
        size = f"{path.stat().st_size:,} bytes"
    except OSError:
        size = "missing"
    return EngineError(f"{path} cannot be read as a graph ({size}; {type(exc).__name__}: {detail}): the file is "
                       "damaged, truncated or not a model; export it again (transferkit export RUN --overwrite)")


def open_graph(path: str | Path, engine: str, precision: str = "fp32", threads: int | None = None,
               cache_dir: str | Path | None = None, throughput: bool = False, reuse: bool = False) -> GraphRunner:
    """A runner of the ONNX (or OpenVINO IR) graph at `path` on `engine`; OpenVINO keeps what it
    compiles in `cache_dir` (when given) and reuses it there (onnxruntime has nothing to keep), and with
    `throughput` runs several inputs at once on streams of its threads (`OpenVINORunner`).

    With `reuse`, the runner an earlier call of this process kept (`keep`) for the same graph file (path,
    size, time), engine and settings is handed out instead of a new one, and the one handed out can be kept;
    a runner kept for anything else is let go first (one graph's compiled model is never kept beside another's)."""
    n = threads if threads is not None else (os.cpu_count() or 0)
    key: tuple[object, ...] | None = None
    if reuse:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, engine, precision, n,
               str(cache_dir) if cache_dir is not None else None, throughput)
        with _KEPT_LOCK:
            kept = _KEPT.pop() if _KEPT else None  # in use (or let go): a second caller meanwhile opens its own
        if kept is not None and kept.reuse_key == key:
            kept.release_after_run = False
            return kept
        with keep_signal_stack():  # the last reference: OpenVINO's plugin may let its signal stack go
            del kept
    runner: GraphRunner
    if engine == "onnxruntime":
        if precision != "fp32":
            raise ValueError(f"onnxruntime runs this graph in fp32 only, got precision {precision!r}")
        runner = OnnxRuntimeRunner(path, threads=n)
    elif engine == "openvino":
        runner = OpenVINORunner(path, precision=precision, threads=n, cache_dir=cache_dir, throughput=throughput)
    else:
        raise ValueError(f"unknown graph engine {engine!r}; expected one of {sorted(PACKAGES)}")
    runner.reuse_key = key
    return runner


#: the runner the last extraction call finished with (`keep`), for this process's next call of the same graph
_KEPT: list[GraphRunner] = []  # at most one
_KEPT_LOCK = threading.Lock()


def keep(runner: GraphRunner) -> None:
    """Keep `runner` (opened with `reuse`) for the next `open_graph(reuse=True)` of its graph in this process,
    its last run's buffers given back; the runner kept before is let go. Opening MiniLM's graph on OpenVINO
    from its model cache and letting it go took ~0.1-0.35 s of an extraction call of 600 short texts (~1.5 s
    on 2 cores). What it holds meanwhile (MiniLM fp32 on OpenVINO: ~180 MB, half of it the mapped blob) goes
    back with `forget_kept`."""
    if runner.reuse_key is None:
        return
    runner.release_buffers()
    with _KEPT_LOCK:
        replaced = _KEPT.pop() if _KEPT else None
        _KEPT.append(runner)
    with keep_signal_stack():
        del replaced


def forget_kept() -> None:
    """Let the kept runner go (its compiled model or session, its weights)."""
    with _KEPT_LOCK:
        kept = _KEPT.pop() if _KEPT else None
    with keep_signal_stack():
        del kept


atexit.register(forget_kept)  # before the interpreter tears its modules down
