"""A pytest plugin: run the suite as on a CPU without native bf16 (AVX2 only), on any machine.

    make test-nobf16        # or: python -m pytest -p tests.nobf16 -m "not slow"

transferkit's bf16 checks (`runtime.cpu_supports_bf16`, OpenVINO's) answer no, so every "auto"
precision resolves to fp32 and the engine race has no bf16 candidate; oneDNN (PyTorch's CPU
kernels) is held to AVX2. onnxruntime and OpenVINO still pick their own kernels from the CPU, so
this checks the code path of such a machine, not its speed. The bf16-only tests skip.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")  # before torch is imported


def _no() -> bool:
    return False


def pytest_configure(config: Any) -> None:
    import transferkit.engines.run as run
    import transferkit.engines.select as select
    import transferkit.runtime as runtime

    runtime.cpu_supports_bf16 = _no
    select.cpu_supports_bf16 = _no
    select.openvino_has_bf16 = _no
    run.openvino_has_bf16 = _no
