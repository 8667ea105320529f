"""Exporting any module to ONNX (`engines.onnx_graph`): an operator ONNX lacks is named, and the graph runs in a
process without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.engines.onnx_graph import export_onnx
from transferkit.errors import EngineError


@torch.library.custom_op("transferkit_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _Mysterious(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mystery(x) + 1


def test_an_operator_onnx_cannot_express_is_named(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(EngineError, match=r"operator 'transferkit_test\.mystery' has no ONNX conversion"):
        export_onnx(_Mysterious(), {"input": torch.randn(2, 3)}, target, dynamic_axes={"input": {0: "batch"}})
    assert not list(tmp_path.iterdir()), "a failed export leaves nothing behind"


def test_export_onnx_takes_any_module_and_runs_without_torch(tmp_path: Path) -> None:
    """What a bundle export builds on: backbone + head as one graph, run by the numpy-only runner
    in a process where importing torch fails."""
    b = create_backbone("resnet10t", weights="random")
    head = torch.nn.Linear(b.num_features, 3)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = b, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone.forward_features(x)).softmax(-1)

    model = Model().eval()
    x = b.example_batch()
    path = export_onnx(model, {"input": x}, tmp_path / "model.onnx", dynamic_axes={"input": {0: "batch"}},
                       output_names=("probabilities",))
    batch = torch.randn(3, *x.shape[1:])
    np.save(tmp_path / "x.npy", batch.numpy())
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import numpy as np\n"
        "from transferkit.engines.run import open_graph\n"
        f"runner = open_graph({str(path)!r}, 'onnxruntime', threads=1)\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, runner({{'input': np.load({str(tmp_path / 'x.npy')!r})}}))\n"
        "assert 'transferkit.backbones' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    with torch.no_grad():
        expected = model(batch).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)
