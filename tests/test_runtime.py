"""Device, precision and BatchNorm folding (`transferkit.runtime`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferkit import runtime
from transferkit.errors import ConfigError


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16" and runtime.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(runtime, "cpu_supports_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32" and runtime.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match=r"precision must be one of .*got 'fp8'"):
        runtime.resolve_precision("fp8", cpu)
    assert runtime.resolve_device("auto").type in ("cpu", "cuda") and runtime.resolve_device("cpu").type == "cpu"


def test_only_rank_zero_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("NODE_RANK", raising=False)
    assert runtime.is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not runtime.is_rank_zero()


def test_folding_batchnorm_into_its_convolution_keeps_the_outputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, bias=True),
                          nn.ReLU(), nn.BatchNorm2d(4))  # the last BatchNorm follows a ReLU: not folded
    with torch.no_grad():
        for bn in (model[1], model[5]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        expected = model(x)
        assert runtime.fold_batchnorm(model, x) == 1
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
