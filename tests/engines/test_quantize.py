"""int8 graphs (`engines.quantize`): close to fp32, calibrated once and reused."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.engines.conftest import backbone, inputs_for, options

from transferkit.engines import select
from transferkit.engines.run import is_installed
from transferkit.features import extract_features


@pytest.mark.slow
@pytest.mark.skipif(not (is_installed("openvino") and __import__("importlib").util.find_spec("nncf")),
                    reason="int8 needs openvino and nncf (pip install 'transferkit[int8]')")
def test_int8_is_close_to_fp32_and_calibrated_once(graph_root: Path) -> None:
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 24)
    feats = extract_features(b, items, options=options(engine="openvino", precision="int8", calibration=tuple(items)))
    assert (feats.engine, feats.precision) == ("openvino", "int8")
    assert feats.parity is not None and feats.parity >= select.MIN_COSINE["int8"]
    quantized = list(graph_root.rglob("int8-*/model.xml"))
    assert len(quantized) == 1
    mtime = quantized[0].stat().st_mtime_ns
    extract_features(b, items[:4], options=options(engine="openvino", precision="int8", calibration=tuple(items)))
    assert quantized[0].stat().st_mtime_ns == mtime, "the int8 graph is reused, not quantized again"
