"""Shared fixtures: small generated datasets and an isolated feature cache."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import numpy as np
import pytest
from PIL import Image


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`make test` runs `-n auto`), each worker gets its share of the cores, so that N
    workers of PyTorch do not each start one thread per core."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch
        from threadpoolctl import threadpool_limits

        share = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(share)
        # OpenBLAS (numpy's, and scipy's, loaded later) starts one spinning thread per core too: two
        # workers' BLAS calls on 2 cores then wait on each other's spinning threads
        os.environ.setdefault("OPENBLAS_NUM_THREADS", str(share))
        os.environ.setdefault("OMP_NUM_THREADS", str(share))  # the CLI processes tests start: PyTorch's pool
        threadpool_limits(limits=share, user_api="blas")


#: tests between two full garbage collections of everything the session holds (see `pytest_runtest_protocol`)
GC_FULL_EVERY = 25
_gc_tests = 0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """After each test, what is alive (the imported libraries, the session's fixtures) is moved out of the
    garbage collector's sight (`gc.freeze`), and every `GC_FULL_EVERY` tests it is collected once in full.

    The product calls `gc.collect()` where it drops an engine (`engines.select.release_memory`): in a CLI
    process that scans the ~0.5 M objects torch, timm and scikit-learn make at import, in a test worker
    also everything hundreds of tests left alive, measured 0.26 s a call with those imports alone and
    ~2/3 of a small fit's CPU (3.1 s → 1.2 s once frozen, one thread, shared machine). Frozen objects are
    still freed by reference counting; only cycles among them wait for the next full collection, so the
    memory a worker holds stays bounded. What a test makes and drops is collected as before."""
    import gc

    global _gc_tests
    try:
        return (yield)
    finally:
        _gc_tests += 1
        if _gc_tests % GC_FULL_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files that hold a slow test first, the rest after, each file's tests in their own order:
    `--dist loadfile` hands whole files to the workers in this order, so a heavy file never starts
    last while the other worker has nothing left to do (the longest first balances the workers)."""
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within a file is kept


COLOURS = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}


def make_image_folder(root: Path, n_per_class: int = 10, size: tuple[int, int] = (40, 48), seed: int = 0) -> Path:
    """root/<colour>/<i>.jpg: noisy images whose dominant colour is the label (a learnable signal)."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            noise = rng.normal(0, 45, (size[1], size[0], 3))
            pixels = (np.array(colour)[None, None, :] + noise).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=90)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets a private default feature cache (never the user's ~/.cache), and its exported graphs
    and engine choices in it (`<cache>/engines`), whatever `$TRANSFERKIT_ENGINES` the user has set. Sharing
    one engines folder per worker was measured and does not pay: a graph exported by one test makes every
    later small run of that backbone race the engines (`AUTO_MIN_ITEMS`), which costs more than the exports
    it saves, and makes the engine a small test runs on depend on the tests before it."""
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("TRANSFERKIT_ENGINES", raising=False)
    # the parity checks an earlier test passed are not this one's (a test may perturb an engine): each test
    # starts as a fresh process does, and its own extraction calls share them as one process's do
    select = sys.modules.get("transferkit.engines.select")
    if select is not None:
        monkeypatch.setattr(select, "_VERIFIED", {})


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("colours") / "data")


@pytest.fixture(scope="session")
def lite0():
    """The real zoo EfficientNet-Lite0 (built once per session)."""
    from transferkit.backbones import create_backbone

    return create_backbone("efficientnet_lite0")


class _CodeAndOutput(NamedTuple):
    code: int
    output: str


class CliRun(_CodeAndOutput):
    """What a user running `transferkit ARGS…` sees: the exit code, and stdout and stderr as printed together
    (it unpacks as `code, output`); `.stdout` is stdout alone, what a pipe (`| jq`) would read."""

    stdout: str = ""


def run_cli(*args: object) -> CliRun:
    """The real entry point (`transferkit.commands:main`, the console script's target) in this process, with
    `sys.argv` as a user's shell gives it: transferkit errors become exit code 2 and one line on stderr there,
    not here. Any other exception propagates (a user would see a traceback: a bug)."""
    from typer.testing import CliRunner

    from transferkit.commands import main

    argv = ["transferkit", *(str(a) for a in args)]
    with CliRunner().isolation() as (stdout, _, output), mock.patch.object(sys, "argv", argv):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        text = output.getvalue().decode(errors="replace")
        run = CliRun(code, text)
        run.stdout = stdout.getvalue().decode(errors="replace")
    return run


@pytest.fixture(scope="session")
def cli() -> Callable[..., CliRun]:
    """`cli("fit", folder, "--json")` → (exit code, output): see `run_cli`."""
    return run_cli
