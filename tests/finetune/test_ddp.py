"""Data-parallel fine-tuning: 2 CPU processes (gloo) reach the accuracy of 1 process.

Stated tolerance: within 0.15 accuracy on the whole (easy, synthetic) data set, with the same
epochs and per-process batch size (so DDP takes half the optimiser steps of 1 process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import run_cli

TOLERANCE = 0.15


def _args(data: Path, out: Path, devices: int) -> list[str]:
    return [
        "fit",
        str(data),
        "--strategy",
        "finetune",
        "--backbone",
        "test_efficientnet",
        "--weights",
        "random",
        "--out",
        str(out),
        "--devices",
        str(devices),
        "--accelerator",
        "cpu",
        "--epochs",
        "4",
        "--precision",
        "fp32",
        "--lr",
        "2e-2",
        "--freeze",
        "full",
        "--batch-size",
        "8",
        "--val",
        "0.2",
        "--test",
        "0",
        "--json",
    ]


def _fit_two(data: Path, out: Path) -> dict[str, object]:
    """2 processes: a process of its own (Lightning's DDP launcher starts the second by running the same
    command line again, which inside pytest would be pytest)."""
    cmd = [sys.executable, "-m", "transferkit", *_args(data, out, 2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{") :])


def _fit_one(data: Path, out: Path) -> dict[str, object]:
    """1 process: the real entry point in this process (no second start of torch and Lightning)."""
    code, output = run_cli(*_args(data, out, 1))
    assert code == 0, output[-3000:]
    return json.loads(output[output.index("{") :])


def _accuracy(bundle: Path, data: Path) -> float:
    """`transferkit evaluate` through the real entry point, in this process (no second start of torch)."""
    code, output = run_cli("evaluate", bundle, data, "--json")
    assert code == 0, output[-3000:]
    return float(json.loads(output[output.index("{") :])["accuracy"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ft_conftest", Path(__file__).parent / "conftest.py")
    helpers = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(helpers)  # type: ignore[union-attr]
    data = helpers.write_images(tmp_path / "data", per_class=16)
    one = _fit_one(data, tmp_path / "one")
    two = _fit_two(data, tmp_path / "two")
    assert (one["processes"], two["processes"]) == (1, 2)
    acc1, acc2 = _accuracy(tmp_path / "one", data), _accuracy(tmp_path / "two", data)
    assert acc1 > 0.6, acc1
    assert abs(acc1 - acc2) <= TOLERANCE, (acc1, acc2)
