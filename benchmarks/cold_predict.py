"""Cold `transferkit predict` of one image: the bundle (PyTorch) against its ONNX export (no PyTorch).

Fits an EfficientNet-Lite0 probe on generated shapes, exports it (`transferkit export`), then runs
each command in a fresh process (the bundle forced with `--engine torch`; a plain `predict RUN` uses
RUN's export once there is one of its weights), interleaved, `--repeats` times, and prints the median wall time
and peak RSS of each (RSS of that process alone: each is measured by a wrapper of its own).

    python benchmarks/cold_predict.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _data import write_shapes

_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "wall = time.perf_counter() - start\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "print(json.dumps({'rc': done.returncode, 'wall_s': wall, 'rss_mb': rss, 'err': done.stderr[-400:]}))\n"
)


def measure(command: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result['err']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tk = str(Path(sys.executable).parent / "transferkit")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_shapes(root / "shapes", per_class=10)
        run = root / "run"
        subprocess.run([tk, "fit", str(data), "--out", str(run), "--cache-dir", str(root / "cache"), "--json"],
                       check=True, capture_output=True)
        subprocess.run([tk, "export", str(run)], check=True, capture_output=True)
        image = str(next(data.rglob("*.jpg")))
        commands = {
            "predict RUN one.jpg --engine torch (bundle)": [tk, "predict", str(run), image, "--no-cache",
                                                            "--engine", "torch"],
            "predict RUN one.jpg (auto: RUN's export)": [tk, "predict", str(run), image],
        }
        results: dict[str, list[dict]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved: the machine's noise hits both alike
            for name, command in commands.items():
                results[name].append(measure(command))
    print(f"cold predict of one image, median of {args.repeats} fresh processes:")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        medians[name] = (wall, rss)
        print(f"  {name:45s} {wall:6.2f} s   peak RSS {rss:6.0f} MB")
    (torch_wall, torch_rss), (onnx_wall, onnx_rss) = medians.values()
    print(f"export against bundle: {torch_wall / onnx_wall:.2f}x faster, {torch_rss / onnx_rss:.2f}x less memory")


if __name__ == "__main__":
    main()
