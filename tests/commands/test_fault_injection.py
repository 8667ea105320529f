"""Issue 12, fault injection: `transferkit fit` killed with SIGKILL at random points — of a probe fit
over an existing bundle, and of a fine-tuning run — 4 times each, one kill point drawn in each quarter of
the run's time (start-up, reading or writing the cache and the checkpoints, saving the bundle), so that
every phase is hit without repeating one; each kill costs a process start (torch, Lightning). Afterwards
the cache and the bundle are whole (the old or the new model, never torn), and a rerun succeeds."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from transferkit import load
from transferkit.bundle import check_writable

KILLS = 4
FAST = ["--backbone", "test_efficientnet", "--weights", "random", "--precision", "fp32"]


def _fit(*args: str | Path, cache: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "transferkit", "fit", *map(str, args), "--cache-dir", str(cache),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stratified(rng: random.Random, low: float, high: float) -> list[float]:
    """KILLS points between `low` and `high`, one drawn at random in each of KILLS equal slices."""
    width = (high - low) / KILLS
    return [low + (i + rng.random()) * width for i in range(KILLS)]


def _kill_after(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """SIGKILL `proc` after `seconds` unless it ended first; True when it was killed."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        return True


def _cache_is_whole(cache: Path, data: Path) -> None:
    """Every cached row checks out: a second extraction reads them with no corruption warning."""
    import warnings

    from transferkit.backbones import create_backbone
    from transferkit.cache import FeatureCache
    from transferkit.data import load_dataset
    from transferkit.features import ExtractOptions, extract_features

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt shard is reported with a warning: make it fail
        extract_features(create_backbone("test_efficientnet", weights="random"), load_dataset(data).items,
                         options=ExtractOptions(progress=False, precision="fp32"), cache=FeatureCache(cache))


@pytest.mark.slow
def test_probe_fit_killed_at_random_points_keeps_bundle_and_cache(image_folder: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "model", tmp_path / "cache"
    first = _fit(image_folder, "--out", out, *FAST, cache=cache)
    assert first.wait(timeout=300) == 0, first.communicate()[1][-2000:]
    # the kill points are drawn within how long a rerun takes on this machine (start-up, reading the
    # cache, the head, the bundle save): fixed seconds landed after the end on a fast machine
    start = time.perf_counter()
    timed = _fit(image_folder, "--out", out, *FAST, "--overwrite", cache=cache)
    assert timed.wait(timeout=300) == 0, timed.communicate()[1][-2000:]
    rerun = time.perf_counter() - start
    rng = random.Random(9)
    killed = 0
    for i, point in enumerate(_stratified(rng, 0.15, 0.9)):
        proc = _fit(image_folder, "--out", out, *FAST, "--overwrite", "--seed", str(i + 1), cache=cache)
        killed += _kill_after(proc, point * rerun)
        model = load(out, progress=False)  # whole: the old model or the new one
        assert list(model.classes_) == ["blue", "green", "red"]
        check_writable(out, overwrite=True)  # nothing foreign left in it
        _cache_is_whole(cache, image_folder)
    assert killed >= KILLS // 2, "the kills should land while fit runs, not after"
    last = _fit(image_folder, "--out", out, *FAST, "--overwrite", cache=cache)
    stdout, stderr = last.communicate(timeout=300)
    assert last.returncode == 0, stderr[-2000:]
    assert json.loads(stdout[stdout.index(b"{"):])["accuracy"] is not None


@pytest.mark.slow
def test_fine_tuning_killed_at_random_points_resumes_or_restarts(image_folder: Path, tmp_path: Path) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = [image_folder, *FAST, "--strategy", "finetune", "--epochs", "3", "--batch-size", "8"]
    # the kill points are drawn within how long a whole run takes here (start-up, epochs, checkpoints, the
    # bundle), as for the probe: fixed seconds land all in the start-up on a slow or busy machine
    start = time.perf_counter()
    timed = _fit(*args, "--out", tmp_path / "timed", cache=cache)
    _, err = timed.communicate(timeout=600)  # read as it runs: Lightning's output could fill a pipe
    assert timed.returncode == 0, err[-2000:]
    whole = time.perf_counter() - start
    rng = random.Random(3)
    for point in _stratified(rng, 0.15, 0.95):
        if (run / "checkpoints" / "last.ckpt").is_file() and not (run / "transferkit.json").is_file():
            proc = _fit(image_folder, "--resume", run, cache=cache)
        else:
            proc = _fit(*args, "--out", run, "--overwrite", cache=cache)
        _kill_after(proc, point * whole)
        check_writable(run, overwrite=True)  # only transferkit's own files, whatever moment it died
        if (run / "transferkit.json").is_file():
            load(run, progress=False)  # a saved bundle is always whole
    final = _fit(*args, "--out", run, "--overwrite", cache=cache)
    stdout, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr[-2000:]
    assert json.loads(stdout[stdout.index(b"{"):])["epochs_run"] == 3
    assert list(load(run, progress=False).classes_) == ["blue", "green", "red"]
