"""What an engine holds in memory: an onnxruntime session plans no memory pattern beside its arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transferkit.engines.onnx_graph import export_onnx
from transferkit.engines.run import is_installed, open_graph


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="needs onnxruntime")
def test_onnxruntime_session_keeps_no_memory_pattern(tmp_path: Path) -> None:
    """With the pattern a session held a second block the size of a batch's intermediate tensors
    (886 MB against 552 MB after batches of 32 EfficientNet-Lite0 images)."""
    path = export_onnx(torch.nn.Linear(4, 3), {"input": torch.randn(2, 4)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    runner = open_graph(path, "onnxruntime", threads=1)
    assert runner.session.get_session_options().enable_mem_pattern is False  # type: ignore[attr-defined]
    assert runner.session.get_session_options().enable_cpu_mem_arena is True  # type: ignore[attr-defined]
    x = np.ones((5, 4), np.float32)
    assert runner({"input": x}).shape == (5, 3)
