"""Issue 12, fault injection: `transferkit fit` killed with SIGKILL at random points — of a probe fit
over an existing bundle, and of a fine-tuning run. Each kill costs a process start (torch, Lightning), so
there are only as many as there are kinds of damage to do: one kill point drawn at random in each of
equal slices of the run's time — 2 for the probe (the first half: start-up and reading the cache, nothing
written yet; the second: the head and the bundle save), 3 for fine-tuning (start-up and the first epoch:
a restart; the later epochs and their checkpoints: a resume; the end: the bundle save). Afterwards the
cache and the bundle are whole (the old or the new model, never torn), and a rerun succeeds. The runs
that are not killed go through the real entry point in this process. The bundle save itself is crashed
at every one of its file steps, deterministically, in tests/test_bundle.py."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import run_cli

from transferkit import load
from transferkit.bundle import check_writable

#: kill points per run: the kinds of damage each can do (see the module's docstring)
PROBE_KILLS = 2
FINETUNE_KILLS = 3
FAST = ["--backbone", "test_efficientnet", "--weights", "random", "--precision", "fp32"]


def _fit(*args: str | Path, cache: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "transferkit", "fit", *map(str, args), "--cache-dir", str(cache),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _fit_here(*args: str | Path, cache: Path) -> dict:
    """A fit that is not killed, through the real entry point in this process (no process start): its
    exit code as a user sees it, and its JSON summary."""
    code, output = run_cli("fit", *args, "--cache-dir", cache, "--json")
    assert code == 0, output[-2000:]
    return json.loads(output[output.index("{"):])


def _stratified(rng: random.Random, low: float, high: float, kills: int) -> list[float]:
    """`kills` points between `low` and `high`, one drawn at random in each of `kills` equal slices."""
    width = (high - low) / kills
    return [low + (i + rng.random()) * width for i in range(kills)]


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
    _fit_here(image_folder, "--out", out, *FAST, cache=cache)
    # the kill points are drawn within how long a rerun takes on this machine (start-up, reading the
    # cache, the head, the bundle save): fixed seconds landed after the end on a fast machine
    start = time.perf_counter()
    timed = _fit(image_folder, "--out", out, *FAST, "--overwrite", cache=cache)
    assert timed.wait(timeout=300) == 0, timed.communicate()[1][-2000:]
    rerun = time.perf_counter() - start
    rng = random.Random(9)
    killed = 0
    for i, point in enumerate(_stratified(rng, 0.15, 0.9, PROBE_KILLS)):
        proc = _fit(image_folder, "--out", out, *FAST, "--overwrite", "--seed", str(i + 1), cache=cache)
        killed += _kill_after(proc, point * rerun)
        model = load(out, progress=False)  # whole: the old model or the new one
        assert list(model.classes_) == ["blue", "green", "red"]
        check_writable(out, overwrite=True)  # nothing foreign left in it
        _cache_is_whole(cache, image_folder)
    assert killed >= 1, "the kills should land while fit runs, not after"
    assert _fit_here(image_folder, "--out", out, *FAST, "--overwrite", cache=cache)["accuracy"] is not None


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
    for point in _stratified(rng, 0.15, 0.95, FINETUNE_KILLS):
        if (run / "checkpoints" / "last.ckpt").is_file() and not (run / "transferkit.json").is_file():
            proc = _fit(image_folder, "--resume", run, cache=cache)
        else:
            proc = _fit(*args, "--out", run, "--overwrite", cache=cache)
        _kill_after(proc, point * whole)
        check_writable(run, overwrite=True)  # only transferkit's own files, whatever moment it died
        if (run / "transferkit.json").is_file():
            load(run, progress=False)  # a saved bundle is always whole
    assert _fit_here(*args, "--out", run, "--overwrite", cache=cache)["epochs_run"] == 3
    assert list(load(run, progress=False).classes_) == ["blue", "green", "red"]
