"""Prediction-server throughput and latency with micro-batching against without it, same run.

Fits a probe (image: EfficientNet-Lite0 from the zoo on generated 400×300 JPEGs; text: MiniLM
on generated sentences), then serves the same bundle twice with `transferkit serve` on
127.0.0.1 — once with micro-batching (the default), once with `--no-micro-batching` (each
request runs alone on the model) — and sends the same bounded load to each: `--requests`
requests, one input each, from `--concurrency` clients with keep-alive connections, after a
warm-up, in `--rounds` rounds that alternate between the two (a shared machine's load drifts;
both see the same drift). Prints requests/s, p50 and p95 latency of both, and the median of
the rounds' throughput ratios.

    python benchmarks/serve.py [--modality image|text] [--requests 400] [--rounds 4] [--concurrency 8]
                               [--precision fp32] [--engine auto] [--threads N]

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
from typing import Any

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


def start_server(run: Path, port: int, *, batching: bool, precision: str, max_batch: int, threads: int | None,
                 engine: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "transferkit", "serve", str(run), "--port", str(port), "--log-level", "warning",
            "--precision", precision, "--max-batch", str(max_batch), "--engine", engine]
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


def load(port: int, bodies: list[tuple[bytes, str]], requests: int, concurrency: int) -> dict[str, Any]:
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
    return {"rps": requests / wall, "wall": wall, "latencies": np.array(latencies) * 1000,
            "ok": statuses.get(200, 0), "other": sum(v for k, v in statuses.items() if k != 200)}


def model_alone(run: Path, bodies: list[tuple[bytes, str]], batch: int, threads: int | None, precision: str,
                engine: str, seconds: float = 2.0) -> tuple[float, float, str]:
    """Inputs/s of the server's model path alone (no HTTP) at batch 1 and at `batch`, alternated."""
    import torch

    import transferkit
    from transferkit.serve.decode import decode_image
    from transferkit.serve.predictor import Predictor

    if threads:
        torch.set_num_threads(threads)
    predictor = Predictor(transferkit.load(run, cache_dir=False, progress=False), precision=precision, engine=engine)
    chosen = "; ".join(line.split(" (")[0] for line in predictor.warm_up(batch))
    samples = []
    for body, content_type in bodies[:batch]:
        item = (decode_image(body, "x", 10**9, predictor.jpeg_min_size) if content_type.startswith("image/")
                else json.loads(body)["text"])
        samples.append(predictor.prepare(item, "x"))
    rates: dict[int, list[float]] = {1: [], batch: []}
    predictor.predict(samples)
    for _ in range(3):
        for size in (1, batch):
            start, n = time.perf_counter(), 0
            while time.perf_counter() - start < seconds / 3:
                predictor.predict(samples[:size])
                n += size
            rates[size].append(n / (time.perf_counter() - start))
    return float(np.median(rates[1])), float(np.median(rates[batch])), chosen


def health(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    return dict(json.loads(conn.getresponse().read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=("image", "text"), default="image")
    parser.add_argument("--requests", type=int, default=400, help="requests per configuration, all rounds together")
    parser.add_argument("--rounds", type=int, default=4, help="the two configurations alternate this many times")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--precision", default="fp32", help="fp32 (every CPU), auto or bf16")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--engine", default="auto", help="the servers' --engine: auto, torch, onnxruntime, openvino")
    parser.add_argument("--threads", type=int, default=None, help="the server's torch threads (default: per core)")
    args = parser.parse_args()
    import torch

    names = {False: "no micro-batching", True: "micro-batching"}
    per_round = max(args.concurrency, args.requests // args.rounds)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names.values()}
    with tempfile.TemporaryDirectory() as tmp:
        run, bodies = fit(args.modality, Path(tmp), args.precision)
        ports = {batching: free_port() for batching in names}
        procs = {batching: start_server(run, ports[batching], batching=batching, precision=args.precision,
                                        max_batch=args.max_batch, threads=args.threads, engine=args.engine)
                 for batching in names}
        try:
            for batching in names:
                load(ports[batching], bodies, 4 * args.concurrency, args.concurrency)  # warm-up
            # the two alternate, so that both see the same (shared, noisy) machine
            for _ in range(args.rounds):
                for batching, name in names.items():
                    rounds[name].append(load(ports[batching], bodies, per_round, args.concurrency))
            mean_batch = {}
            for batching, name in names.items():
                stats = health(ports[batching])
                mean_batch[name] = stats["inputs"] / max(1, stats["batches"])
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=60)
        alone = model_alone(run, bodies, args.concurrency, args.threads, args.precision, args.engine)
    print(f"{args.modality} model, {args.rounds} rounds x {per_round} requests of one input per configuration, "
          f"concurrency {args.concurrency}, precision {args.precision}, engine {args.engine} ({alone[2]}), "
          f"server threads {args.threads or torch.get_num_threads()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}")
    for name, results in rounds.items():
        latencies = np.concatenate([r["latencies"] for r in results])
        wall = sum(r["wall"] for r in results)
        print(f"{name:18s}: {len(latencies) / wall:7.1f} req/s   p50 {np.percentile(latencies, 50):7.1f} ms   "
              f"p95 {np.percentile(latencies, 95):7.1f} ms   mean batch {mean_batch[name]:4.1f}   "
              f"200s {sum(r['ok'] for r in results)}, other {sum(r['other'] for r in results)}")
    print(f"model alone       : batch 1 {alone[0]:.1f} inputs/s, batch {args.concurrency} {alone[1]:.1f} inputs/s "
          f"({alone[1] / alone[0]:.2f}x: the most batching can give on this model and machine)")
    ratios = [b["rps"] / a["rps"] for a, b in zip(rounds[names[False]], rounds[names[True]], strict=True)]
    print(f"throughput ratio  : {float(np.median(ratios)):.2f}x (median of {len(ratios)} rounds; "
          f"each: {', '.join(f'{r:.2f}' for r in ratios)})")
    print("req/s per round   : " + "; ".join(f"{a['rps']:.1f} → {b['rps']:.1f}" for a, b in
                                            zip(rounds[names[False]], rounds[names[True]], strict=True)))


if __name__ == "__main__":
    main()
