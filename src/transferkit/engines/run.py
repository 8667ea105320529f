"""Run an exported ONNX graph with onnxruntime or OpenVINO, on numpy arrays only.

Imports neither torch nor any other part of transferkit (only numpy and the engine itself), so
that a process holding an exported model needs nothing else to predict. Every runner is called
with a dict of named input arrays and returns the graph's first output as a float32 array.
"""

from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import numpy as np

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

    @abstractmethod
    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray: ...

    def _arrays(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise KeyError(f"graph {self.path.name} needs inputs {list(self.input_names)}; missing {missing}")
        return {n: np.ascontiguousarray(inputs[n]) for n in self.input_names}


class OnnxRuntimeRunner(GraphRunner):
    """ONNX Runtime, CPU provider, all graph optimisations, `threads` intra-op threads (0 = all).

    Threads do not spin while idle: on a few cores the spinning would steal time from the processes
    that decode the next batch."""

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
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(i.name for i in self.session.get_inputs())

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        out = self.session.run(None, self._arrays(inputs))[0]
        return np.asarray(out, dtype=np.float32)


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512-BF16 or AMX)."""
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


class OpenVINORunner(GraphRunner):
    """OpenVINO on the CPU, latency hint, at `precision` (fp32, bf16 where the CPU has it, or int8
    for a quantized graph: its int8 layers run int8, the rest fp32)."""

    engine = "openvino"

    def __init__(self, path: str | Path, precision: str = "fp32", threads: int = 0) -> None:
        import openvino as ov

        if precision not in ("fp32", "bf16", "int8"):
            raise ValueError(f"OpenVINO precision must be fp32, bf16 or int8, got {precision!r}")
        self.path = Path(path)
        self.precision = precision
        config: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            # without it OpenVINO runs bf16 on CPUs that have it: fp32 must mean fp32
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        }
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(port.get_any_name() for port in self.compiled.inputs)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        self.request.infer(self._arrays(inputs))
        # the output buffer is reused by the next call: copy it out
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def open_graph(path: str | Path, engine: str, precision: str = "fp32", threads: int | None = None) -> GraphRunner:
    """A runner of the ONNX (or OpenVINO IR) graph at `path` on `engine`."""
    n = threads if threads is not None else (os.cpu_count() or 0)
    if engine == "onnxruntime":
        if precision != "fp32":
            raise ValueError(f"onnxruntime runs this graph in fp32 only, got precision {precision!r}")
        return OnnxRuntimeRunner(path, threads=n)
    if engine == "openvino":
        return OpenVINORunner(path, precision=precision, threads=n)
    raise ValueError(f"unknown graph engine {engine!r}; expected one of {sorted(PACKAGES)}")
