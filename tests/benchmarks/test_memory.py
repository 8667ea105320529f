"""benchmarks/memory.py: the fit's sampler thread reports where the RSS peaked and the process still exits 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# the sampler around a function that holds many small tensors at its RSS peak, then 20 ms of other work
# (`fit_child` writes its report): time enough for a sampler left running to start freeing a peak's
# frame that it kept, and far less than freeing its tensors takes (~0.1 s), so the interpreter's
# shutdown begins while that sampler is in torch's deallocator. The tensors are the main thread's to
# free, never the sampler's.
WORK = """
import importlib.util, json, sys, time
import torch

spec = importlib.util.spec_from_file_location("memory_benchmark", {script!r})
memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(memory)


def held_at_peak():
    tensors = [torch.ones(1) for _ in range(200_000)]
    time.sleep(0.3)
    return len(tensors)


with memory.peak_sampler(where=True, start=time.perf_counter()) as peak:
    held_at_peak()
time.sleep(0.02)
print(json.dumps(peak))
"""


def test_peak_sampler_names_the_peak_and_the_process_exits_cleanly(tmp_path: Path) -> None:
    # the file's name has "transferkit" in it: the sampler keeps the stack's transferkit and sklearn frames
    script = tmp_path / "transferkit_peak_work.py"
    script.write_text(WORK.format(script=str(ROOT / "benchmarks" / "memory.py")))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    # a sampler left running that frees the main thread's tensors while the interpreter shuts down dies
    # in torch's deallocator: SIGABRT (-6), "terminate called without an active exception"
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    peak = json.loads(out.stdout.strip().splitlines()[-1])
    assert peak["rss"] > 0
    # the peak's split: the held tensors are anonymous memory; torch's libraries are mapped files
    parts = peak["parts"]
    assert parts["anon"] > 0 and parts["file"] > 0
    assert any("held_at_peak" in frame for frame in peak["stack"]), peak["stack"]
