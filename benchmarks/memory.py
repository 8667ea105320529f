"""Peak memory of extraction at 2,000 and 20,000 generated images: it must not grow with the inputs.

Each size runs in its own subprocess (so one run's memory cannot hide in another's), on JPEG files
written here, with the feature cache on (emptied between runs), at the defaults (`engine="auto"`)
and precision fp32. A first run on 200 images exports the graph and races the engines, as the
first extraction on a machine does; its peak is shown on its own line (the export holds the
traced graph in memory once), and the measured runs reuse the exported graph.
Reported per size: the process's peak RSS (`ru_maxrss`), its RSS before extraction (torch, the
backbone and the engine libraries loaded), the peak of its loader worker processes, and the size
of the result itself (N × D float32, which the caller asked for and which must grow). Extraction
streams when the peak minus the result stays flat from 2,000 to 20,000 inputs.

    python benchmarks/memory.py [--sizes 2000,20000] [--backbone efficientnet_lite0]

With `--fits`, the peak RSS of a default `transferkit fit` of each modality instead, one
subprocess per fit, on a fresh cache folder (so the first fit's graph export and engine race are
inside it, as on a new machine): ~3,000 generated texts in a CSV (MiniLM + hashed n-grams),
~3,000 small (96 px) JPEGs in class folders (EfficientNet-Lite0 and its 2 augmented views per
training image), ~3,000 one-second WAV clips (GE2E + MFCC statistics, 2 augmented views). Each
must stay under 1.5 GB, read as 1.5 GiB (1,536 MiB; the kernel counts RSS in KiB): every figure here is in
MiB, printed "M" (1,459 MiB is 1.42 GiB, or 1.53 GB in decimal units). Shown: the peak of the fit's own
process, what its loader workers add
(the largest sum, sampled every 50 ms, of the proportional set size, PSS, of the fit's Python child
processes: a forked worker's RSS would count again every page it shares with the fit; and
`ru_maxrss` of children counts any short command a library spawns, e.g. `ldconfig`, at the
parent's whole RSS: a vfork'd child shares its memory), the RSS once everything is imported, how
the sampled peak splits into anonymous memory and pages of mapped files (shared libraries, memory-mapped
weights and graphs: clean pages the kernel can take back), and with `--where` the fit's main-thread stack
at the moment its RSS peaked.

    python benchmarks/memory.py --fits text,image,audio [--n 3000] [--where]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_images(folder: Path, n: int) -> list[str]:
    """`n` JPEG files (16 distinct generated pictures, each written under many names)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(16):
        path = folder / "template.jpg"
        Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(path, quality=85)
        blobs.append(path.read_bytes())
    path.unlink()
    paths = []
    for i in range(n):
        p = folder / f"{i:06d}.jpg"
        if not p.exists():
            p.write_bytes(blobs[i % len(blobs)])
        paths.append(str(p))
    return paths


def rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_parts_mb() -> dict[str, float]:
    """This process's RSS split as the kernel counts it (MB): `anon` (heap, arrays, engines' buffers), `file`
    (pages of mapped files: shared libraries, memory-mapped weights and graphs; clean, so the kernel can take
    them back under pressure) and `shmem`."""
    names = {"RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}
    parts: dict[str, float] = {}
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            key = line.split(maxsplit=1)[0]
            if key in names:
                parts[names[key]] = int(line.split()[1]) / 1024
    return parts


def child(n: int, folder: Path, cache: Path, backbone_name: str) -> None:
    from transferkit.backbones import create_backbone
    from transferkit.cache import FeatureCache
    from transferkit.features import ExtractOptions, extract_features

    paths = sorted(str(p) for p in folder.glob("*.jpg"))[:n]
    backbone = create_backbone(backbone_name)
    import onnxruntime  # noqa: F401  - loaded before the baseline so it is not counted as growth

    before = rss_mb()
    start = time.perf_counter()
    feats = extract_features(backbone, paths, options=ExtractOptions(progress=False, precision="fp32"),
                             cache=FeatureCache(cache))
    seconds = time.perf_counter() - start
    print(json.dumps({
        "n": n,
        "before_mb": before,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "result_mb": feats.values.nbytes / 2**20,
        "seconds": seconds,
        "engine": f"{feats.engine} {feats.precision}",
        "extracted": feats.extracted,
    }))


WORDS = {
    "kitchen": "pan oven stir boil salt pepper garlic onion simmer bake flour sugar butter knife spoon".split(),
    "garden": "soil seed water sun leaf root rake weed bloom prune hedge shovel compost rose tulip".split(),
    "travel": "train ticket station hotel airport bag passport map beach road tour flight delay guide".split(),
    "money": "bank loan rate price budget invoice tax salary saving account credit debt fund cash".split(),
}
FILLER = "the a my our this that and but so very quite it was is were with for on in of to".split()


def write_texts(path: Path, n: int) -> Path:
    """A CSV of `n` texts (`text,label`), 4 topics, 4 to 80 words each (lengths vary as real data's do)."""
    import csv

    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    topics = sorted(WORDS)
    lengths = np.clip(rng.lognormal(mean=2.6, sigma=0.7, size=n), 4, 80).astype(int)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i, k in enumerate(lengths):
            topic = topics[i % len(topics)]
            words = [str(rng.choice(WORDS[topic])) if rng.random() < 0.35 else str(rng.choice(FILLER))
                     for _ in range(int(k))]
            writer.writerow([" ".join(words).capitalize() + ".", topic])
    tmp.replace(path)
    return path


def write_clips(root: Path, n: int) -> Path:
    """root/<class>/<i>.wav: `n` one-second 16 kHz clips, 4 classes of tone patterns in noise."""
    import numpy as np
    import soundfile as sf

    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    kinds = ("low", "high", "chirp", "pulse")
    for i in range(n):
        kind = kinds[i % 4]
        f0 = rng.uniform(150, 400) if kind == "low" else rng.uniform(900, 2000)
        if kind == "chirp":
            wave = np.sin(2 * np.pi * (f0 + 800 * t) * t)
        elif kind == "pulse":
            wave = np.sin(2 * np.pi * f0 * t) * (np.sin(2 * np.pi * rng.uniform(3, 8) * t) > 0)
        else:
            wave = np.sin(2 * np.pi * f0 * t)
        wave = 0.3 * wave + rng.normal(0, 0.03, t.size)
        (root / kind).mkdir(parents=True, exist_ok=True)
        sf.write(root / kind / f"{i:05d}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
    marker.write_text("ok\n")
    return root


def write_small_images(root: Path, n: int) -> Path:
    """root/<shape>/<i>.jpg: `n` 96x96 JPEGs, one shape each (drawn at 240 px, then shrunk)."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from _data import SHAPES, draw_shape

    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    rng = np.random.default_rng(0)
    for i in range(n):
        kind = SHAPES[i % len(SHAPES)]
        (root / kind).mkdir(parents=True, exist_ok=True)
        draw_shape(kind, rng, (240, 240)).resize((96, 96)).save(root / kind / f"{i:05d}.jpg", quality=88)
    marker.write_text("ok\n")
    return root


def fit_data(modality: str, folder: Path, n: int) -> Path:
    """The generated data a default fit of `modality` reads (written once, then reused)."""
    if modality == "text":
        return write_texts(folder / f"texts-{n}.csv", n)
    if modality == "image":
        return write_small_images(folder / f"images-{n}", n)
    if modality == "audio":
        return write_clips(folder / f"clips-{n}", n)
    raise SystemExit(f"--fits takes text, image and audio; got {modality!r}")


def fit_flags(data: Path) -> list[str]:
    """What a user types for this data: the text column of a CSV, the modality of a folder of clips."""
    if data.suffix == ".csv":
        return ["--text-column", "text"]
    if data.name.startswith("clips-"):
        return ["--modality", "audio"]
    return []


def python_children_pss_mb() -> float:
    """The summed PSS of this process's Python child processes (its loader workers), MB; 0 without any."""
    total = 0.0
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                if not Path(f"/proc/{pid}/comm").read_text().startswith(("python", "pt_")):
                    continue
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024
            except (OSError, ValueError):
                continue  # gone meanwhile
    return total


@contextmanager
def peak_sampler(where: bool, start: float) -> Iterator[dict[str, Any]]:
    """While inside, a thread samples every 50 ms this process's RSS, its loader workers' PSS and (with
    `where`) the main thread's stack at the RSS peak; yields the peaks (seconds counted from `start`).

    The thread is joined on the way out and keeps no frame of the main thread. With `where` it used to
    keep the frame of the peak in a local, and with it every local of that stack (the batch, the
    engine and its buffers, the fit's arrays) until the next peak: that memory was counted in later
    peaks (images: 2.13 GB peaking in the test split's engine check, against 1.96 GB in the first
    race without it; text 1.85 against 1.80 GB; 1,000 inputs, fresh cache, 2-3 alternating runs). And
    as a daemon left running it dropped that frame when it returned, while the interpreter was shutting
    down: CPython ends such a thread (pthread_exit) when it asks for the GIL again, torch's tensor
    deallocator gives the GIL up and takes it back, so the thread was ended inside C++ code that cannot
    be unwound: std::terminate, "terminate called without an active exception", SIGABRT after the fit
    had finished and printed its summary (6 of 11 fits on 2026-12-06, then 2 of 13 text fits of 600 or
    1,000 texts; the core showed this thread in frame_dealloc → THPVariable_clear → pthread_exit)."""
    import threading
    import traceback

    main_thread = threading.main_thread()
    peak: dict[str, Any] = {"rss": 0.0, "stack": [], "t": 0.0, "workers": 0.0, "parts": {}}
    done = threading.Event()

    def main_stack() -> list[str]:
        """The main thread's stack now, as text: the frame itself is not kept (a frame held here would keep
        every frame below it alive, and their locals: an engine's session and buffers, a batch)."""
        frame = sys._current_frames().get(main_thread.ident or 0)
        stack = traceback.extract_stack(frame) if frame is not None else []
        del frame
        return [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in stack
                if "transferkit" in f.filename or "sklearn" in f.filename][-8:]

    def sample() -> None:
        while not done.wait(0.05):
            peak["workers"] = max(peak["workers"], python_children_pss_mb())
            rss = rss_mb()
            if rss > peak["rss"]:
                peak["rss"], peak["t"], peak["parts"] = rss, time.perf_counter() - start, rss_parts_mb()
                if where:
                    peak["stack"] = main_stack()

    sampler = threading.Thread(target=sample, name="memory-sampler", daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def fit_child(data: Path, out: Path, report: Path, where: bool) -> None:
    """One default `transferkit fit DATA`, then its peaks written to `report` (JSON)."""
    start = time.perf_counter()
    import torch  # noqa: F401  - what every fit imports first: not counted as the fit's own

    from transferkit.commands import app

    imported = rss_mb()
    with peak_sampler(where, start) as peak:
        app(["fit", str(data), *fit_flags(data), "--out", str(out), "--overwrite", "--json"], standalone_mode=False)
    report.write_text(json.dumps({
        "imported_mb": imported,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_mb": peak["workers"],
        "seconds": time.perf_counter() - start,
        "peak_at_s": peak["t"],
        "peak_parts_mb": peak["parts"],
        "stack": peak["stack"],
    }))


def fits(modalities: list[str], n: int, folder: Path, where: bool) -> None:
    print(f"default `transferkit fit` of {n} generated inputs per modality, fresh cache each; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'modality':>8s} {'imported':>9s} {'peak':>8s} {'workers':>8s} {'minutes':>8s}  accuracy  under 1.5 GiB"
          "   (M: MiB; workers: the loader workers' summed PSS at its peak)")
    for modality in modalities:
        data = fit_data(modality, folder, n)
        with tempfile.TemporaryDirectory(prefix="transferkit-memory-fit-") as tmp:
            report = Path(tmp) / "report.json"
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFERKIT_CACHE": str(Path(tmp) / "cache")}
            out = subprocess.run(
                [sys.executable, __file__, "--fit-child", str(data), "--cache", str(Path(tmp) / "run"),
                 "--report", str(report), *(["--where"] if where else [])],
                capture_output=True, text=True, env=env,
            )
            if not report.exists():
                print(f"{modality:>8s} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
                continue
            if out.returncode != 0:  # the fit finished and wrote its report, then the process died
                print(f"{modality:>8s} finished, then exited {out.returncode}: {out.stderr.strip()[-300:]}")
            row = json.loads(report.read_text())
            try:
                summary = json.loads(out.stdout[out.stdout.index("{"):])
                accuracy = f"{100 * summary['accuracy']:7.1f}%"
            except (ValueError, KeyError, TypeError):
                accuracy = "      ?"
        ok = "yes" if row["peak_mb"] < 1536 else "NO"
        print(f"{modality:>8s} {row['imported_mb']:8.0f}M {row['peak_mb']:7.0f}M {row['workers_peak_mb']:7.0f}M "
              f"{row['seconds'] / 60:8.1f}  {accuracy}  {ok}")
        parts = row.get("peak_parts_mb") or {}
        if parts:
            print(f"{'':>8s} at the sampled peak: {parts.get('anon', 0):.0f} MB anonymous, "
                  f"{parts.get('file', 0):.0f} MB of mapped files (libraries, memory-mapped weights and graphs)")
        if where:
            print(f"{'':>8s} peak at {row['peak_at_s']:.0f}s in: " + " < ".join(reversed(row["stack"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "transferkit-bench-memory")
    parser.add_argument("--fits", default=None, help="comma-separated modalities: peak RSS of a default fit of each")
    parser.add_argument("--n", type=int, default=3000, help="inputs per fit (--fits)")
    parser.add_argument("--where", action="store_true", help="(--fits) where in the code each fit's RSS peaked")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fit-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_child is not None:
        fit_child(args.fit_child, args.cache, args.report, args.where)
        return
    if args.fits:
        fits([m.strip() for m in args.fits.split(",") if m.strip()], args.n, args.data, args.where)
        return
    if args.child is not None:
        child(args.child, args.data, args.cache, args.backbone)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    write_images(args.data, max(sizes))
    print(f"backbone {args.backbone}, precision fp32, engine auto; JPEGs in {args.data}")
    print(f"{'inputs':>7s} {'before':>8s} {'peak':>8s} {'growth':>8s} {'result':>8s} {'growth-result':>14s} "
          f"{'workers':>8s} {'img/s':>7s}  engine")
    rows = []
    with tempfile.TemporaryDirectory(prefix="transferkit-memory-cache-") as cache:
        for n in [200, *sizes]:
            shutil.rmtree(Path(cache) / "features", ignore_errors=True)  # extract everything again
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), "--data", str(args.data), "--cache", cache,
                 "--backbone", args.backbone],
                check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            growth = row["peak_mb"] - row["before_mb"]
            label = "first" if not rows else f"{n:7d}"
            print(f"{label:>7s} {row['before_mb']:7.0f}M {row['peak_mb']:7.0f}M {growth:7.0f}M "
                  f"{row['result_mb']:7.1f}M {growth - row['result_mb']:13.0f}M {row['workers_peak_mb']:7.0f}M "
                  f"{n / row['seconds']:7.1f}  "
                  f"{row['engine']}" + ("   (200 inputs, exports the graph)" if not rows else ""))
            rows.append(row)
    rows = rows[1:]
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(f"peak RSS {b['n']} vs {a['n']} inputs: {b['peak_mb'] - a['peak_mb']:+.0f} MB, of which the larger "
              f"result is {b['result_mb'] - a['result_mb']:+.0f} MB")


if __name__ == "__main__":
    main()
