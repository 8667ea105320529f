"""int8 graphs by post-training quantization with OpenVINO NNCF (an opt-in: `precision="int8"`).

NNCF runs the fp32 graph on calibration samples (the user's own training inputs), records the
range of every activation, and inserts int8 quantize/dequantize pairs (weights per channel,
activations per tensor), then corrects the biases the rounding shifted. The quantized model is
saved as OpenVINO IR (`model.xml` + `model.bin`) next to the fp32 graph, keyed by the digest of
the calibration inputs: other calibration data → another graph.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from transferkit.engines.run import keep_signal_stack, openvino_core
from transferkit.errors import EngineError

#: calibration samples used by default (NNCF's default subset size)
CALIBRATION_SAMPLES = 300


def int8_graph(
    onnx_path: Path,
    calibration_digest: str,
    calibration: Callable[[], Iterable[Mapping[str, np.ndarray]]],
    *,
    transformer: bool = False,
) -> tuple[Path, bool]:
    """The int8 OpenVINO IR of the graph at `onnx_path` (quantized now or reused), and whether
    it was reused. `calibration()` yields the graph's inputs for one sample at a time."""
    folder = onnx_path.parent / f"int8-{calibration_digest[:16]}"
    xml = folder / "model.xml"
    if xml.is_file() and (folder / "model.bin").is_file():
        return xml, True
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise EngineError(
            f"precision 'int8' quantizes with OpenVINO NNCF, which is not installed ({exc.name}); "
            "install it with: pip install 'transferkit[int8]'  (or use precision 'fp32')"
        ) from exc
    samples = [dict(s) for s in calibration()]
    if not samples:
        raise EngineError("precision 'int8' needs calibration inputs, and none could be read")
    model = openvino_core().read_model(str(onnx_path))
    extra = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    with keep_signal_stack():  # NNCF runs the graph on OpenVINO Cores of its own
        quantized = nncf.quantize(
            model, nncf.Dataset(samples), subset_size=len(samples), preset=nncf.QuantizationPreset.MIXED, **extra
        )
    staging = Path(tempfile.mkdtemp(dir=onnx_path.parent, prefix=".tmp-int8-"))
    try:
        ov.save_model(quantized, str(staging / "model.xml"), compress_to_fp16=False)
        try:
            os.replace(staging, folder)  # atomic: the folder appears whole or not at all
        except OSError:  # another process got there first
            if not xml.is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml, False
