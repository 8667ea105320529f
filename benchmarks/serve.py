"""Prediction-server throughput and latency with micro-batching against without it, same run.

Fits a probe (image: EfficientNet-Lite0 from the zoo on generated 400×300 JPEGs; text: MiniLM
on generated sentences), then serves the same bundle twice with `transferkit serve` on
127.0.0.1 — once with micro-batching (the default), once with `--no-micro-batching` (each
request runs alone on the model) — and sends the same bounded load to each: `--requests`
requests, one input each, from `--concurrency` clients with keep-alive connections, after a
warm-up. Prints requests/s, p50 and p95 latency of both, and the ratio.

    python benchmarks/serve.py [--modality image|text] [--requests 400] [--concurrency 8] [--precision fp32]
                               [--threads N]

Loopback only; the server and the clients share this machine's cores (the clients are light:
http.client in threads).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _data import write_shapes

WORDS = ["local", "national", "young", "old", "city", "northern", "famous", "small", "quiet", "busy"]
TEMPLATES = {
    "sport": "The {a} team won the match after a late goal in the second half",
    "cooking": "Simmer the {a} sauce for ten minutes and season it with salt",
    "finance": "Shares of the {a} company fell sharply after the bank raised rates",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fit(modality: str, root: Path, precision: str) -> tuple[Path, list[tuple[bytes, str]]]:
    """A bundle, and the request bodies (body, content type) to send to it."""
    from transferkit import TransferClassifier

    if modality == "image":
        data = write_shapes(root / "shapes", per_class=12, seed=0)
        paths = sorted(str(p) for p in data.rglob("*.jpg"))
        labels = [Path(p).parent.name for p in paths]
        clf = TransferClassifier(backbone="efficientnet_lite0", precision=precision, cache_dir=False, progress=False)
        clf.fit(paths, labels)
        bodies = [(Path(p).read_bytes(), "image/jpeg") for p in paths]
    else:
        rng = np.random.default_rng(0)
        texts = [t.format(a=rng.choice(WORDS)) for t in TEMPLATES.values() for _ in range(12)]
        labels = [k for k in TEMPLATES for _ in range(12)]
        clf = TransferClassifier(backbone="minilm", precision=precision, cache_dir=False, progress=False)
        clf.fit(texts, labels)
        bodies = [(json.dumps({"text": t}).encode(), "application/json") for t in texts]
    out = root / "model"
    clf.save(out)
    return out, bodies


def start_server(run: Path, port: int, *, batching: bool, precision: str, max_batch: int, threads: int | None
                 ) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "transferkit.cli", "serve", str(run), "--port", str(port), "--log-level", "warning",
            "--precision", precision, "--max-batch", str(max_batch)]
    if threads:
        args += ["--threads", str(threads)]
    if not batching:
        args.append("--no-micro-batching")
    proc = subprocess.Popen(args, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def load(port: int, bodies: list[tuple[bytes, str]], requests: int, concurrency: int) -> dict[str, float]:
    """Send `requests` requests from `concurrency` keep-alive clients; latency of each, wall time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))

    def client(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body, content_type = bodies[i % len(bodies)]
            start = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"rps": requests / wall, "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "ok": statuses.get(200, 0), "other": sum(v for k, v in statuses.items() if k != 200)}


def health(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    return dict(json.loads(conn.getresponse().read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=("image", "text"), default="image")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--precision", default="fp32", help="fp32 (every CPU), auto or bf16")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: per core)")
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        run, bodies = fit(args.modality, Path(tmp), args.precision)
        results = {}
        for name, batching in (("no micro-batching", False), ("micro-batching", True)):
            port = free_port()
            proc = start_server(run, port, batching=batching, precision=args.precision, max_batch=args.max_batch,
                                threads=args.threads)
            try:
                load(port, bodies, 4 * args.concurrency, args.concurrency)  # warm-up
                results[name] = load(port, bodies, args.requests, args.concurrency)
                stats = health(port)
                results[name]["mean_batch"] = stats["inputs"] / max(1, stats["batches"])
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(f"{args.modality} model, {args.requests} requests of one input, concurrency {args.concurrency}, "
          f"precision {args.precision}, server threads {args.threads or torch.get_num_threads()}, "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}")
    for name, r in results.items():
        print(f"{name:18s}: {r['rps']:7.1f} req/s   p50 {r['p50']:7.1f} ms   p95 {r['p95']:7.1f} ms   "
              f"mean batch {r['mean_batch']:4.1f}   200s {r['ok']}, other {r['other']}")
    base, batched = results["no micro-batching"], results["micro-batching"]
    print(f"throughput ratio  : {batched['rps'] / base['rps']:.2f}x   "
          f"p50 ratio {batched['p50'] / base['p50']:.2f}   p95 ratio {batched['p95'] / base['p95']:.2f}")


if __name__ == "__main__":
    main()
