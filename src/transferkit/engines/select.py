"""Which engine extraction runs on, and the check that it computes what PyTorch computes.

An engine runs one collated batch to features [B, D]: `TorchEngine` (the backbone itself, with
bf16 autocast or not) or `GraphEngine` (the backbone's exported graph on onnxruntime or
OpenVINO, with the torch code around it from `Backbone.graph_parts()`).

`select_engine` looks at the first batch. Every candidate (engine × precision allowed by the
request and the hardware) runs the first few samples, and its features are compared with
PyTorch fp32's (cosine per sample: ≥ 0.99999 for fp32 engines, ≥ 0.99 for bf16, ≥ 0.95 for
int8). With `engine="auto"` the candidates that agree are timed on the whole first batch and the
fastest is used; the choice is remembered on disk for this machine, backbone and batch size, so
later runs skip the race (never the parity check) and give the same features run after run.
Among torch precisions alone there is no race: bf16 where it agrees, else fp32. An engine asked
for that is not installed, cannot compile, or disagrees with PyTorch is replaced by a named
fallback, said in a note and an `EngineWarning`: never silently different numbers.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import platform
import sys
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from transferkit.engines.run import PACKAGES, GraphRunner, is_installed, open_graph, openvino_has_bf16
from transferkit.errors import ConfigError, EngineError, EngineWarning
from transferkit.params import ENGINE, PRECISION
from transferkit.runtime import autocast, cpu_supports_bf16

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
#: preference when timings are not taken (fastest first on the CPUs measured)
_ORDER = ("openvino", "onnxruntime", "torch")


class BatchEngine(ABC):
    """Runs one collated batch to float32 features [B, num_features] on the CPU (or the device)."""

    engine: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"

    @abstractmethod
    def __call__(self, batch: Any) -> torch.Tensor: ...


class TorchEngine(BatchEngine):
    """The backbone in PyTorch: `forward_features` under inference mode, bf16 autocast or fp32."""

    engine = "torch"

    def __init__(self, model: Backbone, precision: str, device: torch.device, channels_last: bool) -> None:
        self.model, self.precision, self.device, self.channels_last = model, precision, device, channels_last

    def __call__(self, batch: Any) -> torch.Tensor:
        x = self.model.to_batch_device(batch, self.device)
        if self.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.precision, self.device):
            return self.model.forward_features(x).float().cpu()


class GraphEngine(BatchEngine):
    """The backbone's exported graph on a numpy runner, with its torch pre/post steps around it."""

    def __init__(self, parts: GraphParts, runner: GraphRunner) -> None:
        self.parts, self.runner = parts, runner
        self.engine, self.precision = runner.engine, runner.precision

    def __call__(self, batch: Any) -> torch.Tensor:
        with torch.inference_mode():
            inputs, context = self.parts.prepare(batch)
            arrays = {n: inputs[n].detach().cpu().numpy() for n in self.runner.input_names}
            rows = torch.from_numpy(self.runner(arrays))
            return self.parts.finish(rows, context).float()


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
    samples: Callable[[], Iterable[Any]]


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
    if engine == "openvino" and "bf16" in wanted and not openvino_has_bf16():
        wanted = [p for p in wanted if p != "bf16"]
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

    def __init__(self, root: str | Path | None, ident: dict[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        self.path = engines_dir(root) / "choices" / f"{digest}.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self) -> str | None:
        choice = self._read().get("choice")
        return str(choice) if choice else None

    def runner_up(self) -> str | None:
        other = self._read().get("runner_up")
        return str(other) if other else None

    def recheck_due(self, items_to_extract: int | None, batch: int) -> bool:
        """Whether this run times the choice against the runner-up again: every `RECHECK_EVERY`
        runs, when the run has enough batches for the check (and a runner-up is known)."""
        data = self._read()
        enough = items_to_extract is not None and items_to_extract >= batch * (2 * RECHECK_ROUNDS + 4)
        return bool(data.get("runner_up")) and enough and int(data.get("uses", 0)) + 1 >= RECHECK_EVERY

    def count_use(self) -> None:
        data = self._read()
        if data:
            data["uses"] = int(data.get("uses", 0)) + 1
            self._write(data)

    def put(self, label: str, rates: dict[str, float], runner_up: str | None = None) -> None:
        self._write({"choice": label, "samples_per_s": rates, "runner_up": runner_up, "uses": 0})

    def _write(self, data: dict[str, Any]) -> None:
        try:
            write_json_atomic(self.path, data)
        except OSError:
            pass  # a read-only cache only costs the next run a race


def select_engine(
    backbone: Backbone,
    model: Callable[[], Backbone],
    samples: Sequence[Any],
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
    head = backbone.collate(list(samples[:PARITY_SAMPLES]))
    # the reference is the backbone itself in fp32 (channels_last inputs: same numbers, ~2x faster)
    reference_engine = TorchEngine(backbone, "fp32", device, channels_last=True)
    selection = Selection(engine=reference_engine)
    reference = reference_engine(head)

    engines = _engines_to_try(engine, precision, device, selection)
    parts: GraphParts | None = None
    remembered: _Remembered | None = None
    if any(e != "torch" for e in engines):
        try:
            parts = backbone.graph_parts()
        except Exception as exc:
            if engine != "auto":
                raise
            # said, not warned: under auto, torch is a fine answer for a model with no graph to export
            selection.notes.append(f"engine auto: '{backbone.name}' has no exportable graph ({exc}); using torch")
            engines = ["torch"]
    choice: str | None = None
    if parts is not None and engine == "auto":
        key = graph_key(backbone, parts)
        remembered = _Remembered(root, {
            "graph": key_digest(key), "precision": precision, "batch": len(samples), "machine": _machine_signature(),
        })
        choice = remembered.get()
        small = items_to_extract is not None and items_to_extract < AUTO_MIN_ITEMS
        if choice is None and small and not (graph_folder(backbone, key, root) / "model.onnx").is_file():
            engines = ["torch"]
    candidates = _all_candidates(engines, precision, device)
    if choice is not None:
        candidates = [c for c in candidates if f"{c[0]} {c[1]}" == choice] or candidates
    if not candidates:
        raise ConfigError(
            f"engine '{engine}' cannot run precision '{precision}' here: onnxruntime runs fp32; "
            "bf16 needs a CPU with native bf16 (AVX512-BF16/AMX) for openvino; int8 runs on openvino. "
            "Use precision 'auto' or 'fp32', or another engine."
        )

    race = engine == "auto" and len(candidates) > 1 and any(name != "torch" for name, _ in candidates)
    recheck = remembered is not None and choice is not None and remembered.recheck_due(items_to_extract, len(samples))
    if recheck and remembered is not None:
        runner_up = remembered.runner_up()
        pair = [c for c in _all_candidates(engines, precision, device) if f"{c[0]} {c[1]}" in (choice, runner_up)]
        candidates = sorted(pair, key=lambda c: f"{c[0]} {c[1]}" != choice)  # the choice first
        recheck = len(candidates) == 2
    batch = backbone.collate(list(samples)) if race else None
    agreeing: list[tuple[BatchEngine, float]] = []
    rejected: list[str] = []  # what the user must be told
    quiet: list[str] = []  # bf16/int8 too far off under auto: expected on some models
    head_out: dict[str, torch.Tensor] = {}
    best: _Timed | None = None  # under a race, only the fastest so far is kept (bounded memory)
    for candidate in _built(backbone, model, parts, candidates, engine, precision, device, channels_last, root,
                            calibration, selection):
        try:
            head_out[candidate.label] = candidate(head)
            cosine = _cosine(head_out[candidate.label], reference)
        except Exception as exc:
            rejected.append(f"{candidate.label} failed on the first batch ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if cosine < MIN_COSINE[candidate.precision]:
            reason = (f"{candidate.label} disagrees with PyTorch fp32 on the first batch (min cosine {cosine:.6f} "
                      f"< {MIN_COSINE[candidate.precision]})")
            (rejected if engine != "auto" or candidate.precision == "fp32" else quiet).append(reason)
            continue
        if batch is None:
            agreeing.append((candidate, cosine))
            continue
        best = _race(best, _Timed(candidate, cosine), batch, selection.rates)
        agreeing = [(best.engine, best.cosine)]
        del candidate
        release_memory()

    selection.notes.extend(f"{reason}; not used" for reason in quiet)
    if not agreeing:
        if precision == "int8":
            raise EngineError(
                f"the int8 graph of '{backbone.name}' is too far from PyTorch fp32 on the first batch "
                f"({'; '.join(rejected + quiet)}): quantization lost too much here; use precision 'fp32'"
            )
        selection.engine, selection.min_cosine = TorchEngine(model(), "fp32", device, channels_last), 1.0
        _warn(selection, f"{'; '.join(rejected or quiet)}: falling back to torch fp32")
        return selection
    if rejected:
        _warn(selection, f"{'; '.join(rejected)}: not used")
    if best is not None:
        selection.engine, selection.min_cosine, selection.first = best.engine, best.cosine, best.out
        ranked = sorted(selection.rates.items(), key=lambda kv: -kv[1])
        rates = ", ".join(f"{label} {rate:.0f}/s" for label, rate in ranked)
        selection.notes.append(f"engine {engine} chose {best.engine.label} (first batch, median of {TIMED_ROUNDS} "
                               f"interleaved runs after a warm-up: {rates})")
        if remembered is not None and len(ranked) > 1:
            remembered.put(best.engine.label, selection.rates, runner_up=ranked[1][0])
        return selection
    if len(agreeing) > 1 and all(c.engine == "torch" for c, _ in agreeing):
        # torch alone: no race, so that the same data gives the same features run after run; bf16
        # where it agrees (on CPUs with native bf16 it is ~1.7x faster than fp32, measured)
        agreeing = sorted(agreeing, key=lambda pair: pair[0].precision != "bf16")[:1]
    if recheck and remembered is not None and len(agreeing) == 2:
        chosen_engine, cosine = agreeing[0]
        selection.engine = Rechecked(chosen_engine, agreeing[1][0], remembered, selection.notes)
        selection.min_cosine = min(cosine, agreeing[1][1])
        return selection
    selection.engine, selection.min_cosine = agreeing[0]
    if len(samples) <= PARITY_SAMPLES:  # the head was the whole batch: its features are done
        selection.first = head_out[selection.engine.label]
    if engine == "auto" and choice is not None:
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

    def run(self, batch: Any) -> None:
        start = time.perf_counter()
        self.out = self.engine(batch)
        self.seconds.append(time.perf_counter() - start)


def _race(best: _Timed | None, challenger: _Timed, batch: Any, rates: dict[str, float]) -> _Timed:
    """The faster of `best` and `challenger` on `batch`: one warm-up run each, then `TIMED_ROUNDS`
    runs interleaved (A B A B …: a burst of load on a shared machine hits both alike), medians
    compared. The loser is dropped by the caller: at most two engines are alive at once."""
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
    if best is None or np.median(challenger.seconds) < np.median(best.seconds):
        return challenger
    return best


def _batch_len(batch: Any, out: torch.Tensor | None) -> int:
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

    def __call__(self, batch: Any) -> torch.Tensor:
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
    graph_engines = [e for e in _ORDER if e != "torch"]
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
        return ["torch", *[e for e in graph_engines if is_installed(e)]]
    if is_installed(engine):
        return [engine]
    fallback = next((e for e in _ORDER if e != engine and is_installed(e) and _precisions(e, precision, device)),
                    "torch")
    _warn(selection, f"engine '{engine}' is not installed (pip install {PACKAGES.get(engine, engine)}); "
                     f"running on {fallback} instead")
    return [fallback]


def _built(
    backbone: Backbone,
    model: Callable[[], Backbone],
    parts: GraphParts | None,
    candidates: list[tuple[str, str]],
    requested: str,
    precision: str,
    device: torch.device,
    channels_last: bool,
    root: str | Path | None,
    calibration: Calibration | None,
    selection: Selection,
) -> Iterator[BatchEngine]:
    """An engine per candidate, one at a time (the caller drops the ones it does not keep); graph
    engines share one exported (cached) graph."""
    count = 0
    graph: Path | None = None
    graph_failed = False
    threads = torch.get_num_threads()
    for name, prec in candidates:
        if name == "torch":
            count += 1
            yield TorchEngine(model(), prec, device, channels_last)
            continue
        if graph_failed or parts is None:
            continue
        try:
            if graph is None:
                graph, _ = backbone_graph(backbone, parts, root=root)
                release_memory()  # what the export held (a traced program, the graph in memory)
            path = _int8_path(backbone, parts, graph, calibration) if prec == "int8" else graph
            runner = open_graph(path, name, prec, threads)
        except EngineError as exc:
            if requested != "auto" or precision == "int8":
                raise
            _warn(selection, f"engine auto: {exc} Using torch.")
            graph_failed = True
            continue
        except Exception as exc:  # the engine itself failed to compile or run the graph
            if precision == "int8":
                raise EngineError(f"OpenVINO could not run the int8 graph of '{backbone.name}' "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
            _warn(selection, f"{name} could not compile the graph of '{backbone.name}' "
                             f"({type(exc).__name__}: {str(exc)[:200]}); not used")
            continue
        count += 1
        yield GraphEngine(parts, runner)
    if not count:
        _warn(selection, f"no engine of {[f'{n} {p}' for n, p in candidates]} could run; falling back to torch fp32")
        yield TorchEngine(model(), "fp32", device, channels_last)


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise: an exported graph or a
    dropped engine would stay in the process's RSS for the rest of the run)."""
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):
            pass


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
