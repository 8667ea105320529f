"""Export any `nn.Module` to one ONNX file, atomically, with an error that names what ONNX lacks.

Tries torch's TorchScript exporter first (`dynamo=False`: it traces the module once), then the
dynamo-based one (`torch.export` captures the graph, onnxscript translates each aten operator) for
a module the trace cannot express. Both write graphs that agree with PyTorch (every use is checked
against it), but the trace is 5 to 18 times faster on 2 cores (`benchmarks/export_time.py`:
EfficientNet-Lite0, MiniLM, GE2E), and a first fit, a server's start and `transferkit export` all
wait for it. Axes named in `dynamic_axes` stay symbolic (batch size, sequence length); the rest
are fixed by the example. The weights are stored inside the one file (no external data).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from transferkit.errors import EngineError

#: ONNX opset of exported graphs (onnxruntime ≥ 1.14 and OpenVINO ≥ 2023 read it)
DEFAULT_OPSET = 18
#: the exporters tried, in order (part of an exported graph's cache key)
EXPORTERS = ("torchscript", "dynamo")
_OPERATOR_PATTERNS = (
    r"OpOverload\(op='([\w.:]+)'",
    r"target=torch\.ops\.([\w.]+?)(?:\.default)?\b",
    r"operator '?([\w]+::[\w.]+)'?",
    r"(aten[.:]{1,2}\w+)",
)


def unsupported_operator(exc: BaseException) -> str | None:
    """The operator an export error is about (e.g. 'aten.stft', 'mylib.op'), when it says."""
    text = str(exc)
    cause = exc.__cause__
    while cause is not None:
        text += "\n" + str(cause)
        cause = cause.__cause__
    for pattern in _OPERATOR_PATTERNS:
        match = re.search(pattern, text)
        if match:
            return match.group(1).removesuffix(".default")
    return None


def export_onnx(
    module: nn.Module,
    example_inputs: Mapping[str, torch.Tensor],
    path: str | Path,
    *,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    output_names: Sequence[str] = ("features",),
    opset: int = DEFAULT_OPSET,
    exporters: Sequence[str] = EXPORTERS,
) -> Path:
    """Write `module(*example_inputs.values())` as an ONNX graph to `path`, atomically; return `path`.

    Graph inputs are named after the keys of `example_inputs`, in order. `dynamic_axes` maps an
    input name to {axis: label}; axes with the same label (e.g. "batch") share one dimension.
    Raises `EngineError` naming the operator when ONNX cannot express one. `exporters`: which of
    `EXPORTERS` to try, in order (`benchmarks/export_time.py` times each alone).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(example_inputs)
    args = tuple(example_inputs[n] for n in names)
    dims: dict[str, torch.export.Dim] = {}
    axes = dynamic_axes or {}
    shapes = tuple(
        {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.get(n, {}).items()} or None
        for n in names
    )
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    was_training = module.training
    module.eval()
    try:
        # the exporters report their steps on stdout and warn about every guard they add
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            _export(module, args, tmp, names, list(output_names), opset, axes, shapes, exporters)
        os.replace(tmp, path)
    except Exception as exc:
        operator = unsupported_operator(exc)
        what = f"operator '{operator}'" if operator else "an operation"
        raise EngineError(
            f"cannot export {type(module).__name__} to ONNX (opset {opset}): {what} has no ONNX "
            f"conversion ({type(exc).__name__}: {_first_line(exc)}). Run it with engine='torch', or "
            "replace that operation in the model."
        ) from exc
    finally:
        module.train(was_training)
        tmp.unlink(missing_ok=True)
        for leftover in path.parent.glob(f"{tmp.name}*"):  # external-data side files, if any
            leftover.unlink(missing_ok=True)
    return path


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, names: list[str], outputs: list[str],
            opset: int, axes: Mapping[str, Mapping[int, str]], shapes: tuple[dict[int, torch.export.Dim] | None, ...],
            exporters: Sequence[str]) -> None:
    """The first of `exporters` that can express `module`; the last one's error if none can."""
    unknown = [e for e in exporters if e not in EXPORTERS]
    if unknown or not exporters:
        raise ValueError(f"exporters: {unknown or 'none'}; choose from {', '.join(EXPORTERS)}")
    for i, exporter in enumerate(exporters):
        try:
            if exporter == "torchscript":
                _trace_export(module, args, path, names, outputs, opset, axes)
            else:
                torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs,
                                  opset_version=opset, dynamo=True, external_data=False,
                                  dynamic_shapes=_shapes_for(module, shapes), verbose=False)
            return
        except Exception:
            if i == len(exporters) - 1:
                raise


def _trace_export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, names: list[str],
                  outputs: list[str], opset: int, axes: Mapping[str, Mapping[int, str]]) -> None:
    """The TorchScript exporter. The outputs' first axis is dynamic when an input's first axis is (batch
    size, or an audio clip's partials: rows follow the inputs' first axis)."""
    dynamic: dict[str, dict[int, str]] = {n: dict(axes[n]) for n in names if axes.get(n)}
    first = next((a[0] for a in dynamic.values() if 0 in a), None)
    if first is not None:
        dynamic.update({n: {0: first} for n in outputs})
    torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs, opset_version=opset,
                      dynamo=False, dynamic_axes=dynamic or None, verbose=False)


def _shapes_for(module: nn.Module, shapes: tuple[dict[int, torch.export.Dim] | None, ...]) -> tuple[object, ...]:
    """`dynamic_shapes` in the structure of `module.forward`'s signature (positional or *args)."""
    import inspect

    params = list(inspect.signature(module.forward).parameters.values())
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:
        return (shapes,)
    return shapes


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__
