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

import hashlib
import json
import platform
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transferkit.backbones.base import Backbone, GraphParts
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
    """The engine `auto` chose for a (graph, request, batch size, machine): one small JSON file."""

    def __init__(self, root: str | Path | None, ident: dict[str, Any]) -> None:
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]
        self.path = engines_dir(root) / "choices" / f"{digest}.json"

    def get(self) -> str | None:
        try:
            return str(json.loads(self.path.read_text(encoding="utf-8"))["choice"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, label: str, rates: dict[str, float]) -> None:
        try:
            write_json_atomic(self.path, {"choice": label, "samples_per_s": rates})
        except OSError:
            pass  # a read-only cache only costs the next run a race


def select_engine(
    backbone: Backbone,
    model: Callable[[], Backbone],
    samples: Sequence[Any],
    *,
    engine: str = "auto",
    precision: str = "auto",
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
    candidates = [(e, p) for e in engines for p in _precisions(e, precision, device)]
    if choice is not None:
        candidates = [c for c in candidates if f"{c[0]} {c[1]}" == choice] or candidates
    if not candidates:
        raise ConfigError(
            f"engine '{engine}' cannot run precision '{precision}' here: onnxruntime runs fp32; "
            "bf16 needs a CPU with native bf16 (AVX512-BF16/AMX) for openvino; int8 runs on openvino. "
            "Use precision 'auto' or 'fp32', or another engine."
        )

    built = _build(backbone, model, parts, candidates, engine, precision, device, channels_last, root,
                   calibration, selection)
    agreeing: list[tuple[BatchEngine, float]] = []
    rejected: list[str] = []  # what the user must be told
    quiet: list[str] = []  # bf16/int8 too far off under auto: expected on some models
    head_out: dict[str, torch.Tensor] = {}
    for candidate in built:
        try:
            head_out[candidate.label] = candidate(head)
            cosine = _cosine(head_out[candidate.label], reference)
        except Exception as exc:
            rejected.append(f"{candidate.label} failed on the first batch ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if cosine >= MIN_COSINE[candidate.precision]:
            agreeing.append((candidate, cosine))
            continue
        reason = (f"{candidate.label} disagrees with PyTorch fp32 on the first batch (min cosine {cosine:.6f} "
                  f"< {MIN_COSINE[candidate.precision]})")
        (rejected if engine != "auto" or candidate.precision == "fp32" else quiet).append(reason)

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
    if len(agreeing) > 1 and all(c.engine == "torch" for c, _ in agreeing):
        # torch alone: no race, so that the same data gives the same features run after run; bf16
        # where it agrees (on CPUs with native bf16 it is ~1.7x faster than fp32, measured)
        agreeing = sorted(agreeing, key=lambda pair: pair[0].precision != "bf16")[:1]
    if len(agreeing) == 1:
        selection.engine, selection.min_cosine = agreeing[0]
        if len(samples) <= PARITY_SAMPLES:  # the head was the whole batch: its features are done
            selection.first = head_out[selection.engine.label]
    else:
        batch = backbone.collate(list(samples))
        timed: list[tuple[float, BatchEngine, float, torch.Tensor]] = []
        for candidate, cosine in agreeing:
            start = time.perf_counter()
            out = candidate(batch)
            seconds = time.perf_counter() - start
            selection.rates[candidate.label] = len(samples) / max(seconds, 1e-9)
            timed.append((seconds, candidate, cosine, out))
        seconds, chosen, cosine, out = min(timed, key=lambda t: t[0])
        selection.engine, selection.min_cosine, selection.first = chosen, cosine, out
        rates = ", ".join(f"{label} {rate:.0f}/s" for label, rate in
                          sorted(selection.rates.items(), key=lambda kv: -kv[1]))
        selection.notes.append(f"engine {engine} chose {chosen.label} (first batch: {rates})")
        if remembered is not None and any(c.engine != "torch" for c, _ in agreeing):
            remembered.put(chosen.label, selection.rates)
    if engine == "auto" and not selection.rates and selection.engine.engine != "torch":
        selection.notes.append(f"engine auto: {selection.engine.label} (chosen on this machine before)")
    return selection


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


def _build(
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
) -> list[BatchEngine]:
    """An engine per candidate; graph engines share one exported (cached) graph."""
    built: list[BatchEngine] = []
    graph: Path | None = None
    graph_failed = False
    threads = torch.get_num_threads()
    for name, prec in candidates:
        if name == "torch":
            built.append(TorchEngine(model(), prec, device, channels_last))
            continue
        if graph_failed or parts is None:
            continue
        try:
            if graph is None:
                graph, _ = backbone_graph(backbone, parts, root=root)
            path = _int8_path(backbone, parts, graph, calibration) if prec == "int8" else graph
            built.append(GraphEngine(parts, open_graph(path, name, prec, threads)))
        except EngineError as exc:
            if requested != "auto" or precision == "int8":
                raise
            _warn(selection, f"engine auto: {exc} Using torch.")
            graph_failed = True
        except Exception as exc:  # the engine itself failed to compile or run the graph
            if precision == "int8":
                raise EngineError(f"OpenVINO could not run the int8 graph of '{backbone.name}' "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
            _warn(selection, f"{name} could not compile the graph of '{backbone.name}' "
                             f"({type(exc).__name__}: {str(exc)[:200]}); not used")
    if not built:
        built.append(TorchEngine(model(), "fp32", device, channels_last))
        _warn(selection, f"no engine of {[f'{n} {p}' for n, p in candidates]} could run; falling back to torch fp32")
    return built


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
