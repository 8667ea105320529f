"""A full disk: the feature cache warns once (one CLI note) and the fit goes on without it; a
bundle save fails with one message naming the folder and the space it needs, the old bundle intact.

The disk is a real, tiny tmpfs mounted in a private mount namespace (`unshare -m`), so the
failures are the kernel's own ENOSPC; the tests skip where mounting is not allowed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _in_tmpfs(script: str, mount: Path, size: str = "4m") -> subprocess.CompletedProcess[str]:
    """Run the shell `script` with a fresh tmpfs of `size` mounted at `mount` (private to it)."""
    mount.mkdir(parents=True, exist_ok=True)
    body = f"mount -t tmpfs -o size={size} tmpfs {mount} || exit 77\n{script}"
    return subprocess.run(["unshare", "-m", "sh", "-c", body], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare to mount a private tmpfs")
    probe = _in_tmpfs("true", tmp_path_factory.mktemp("probe") / "mnt", "64k")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()[:200]}")


def _fill(mount: Path, leave_kb: int) -> str:
    """Shell: fill the tmpfs at `mount` until `leave_kb` KB are left."""
    return (f"free=$(df -k --output=avail {mount} | tail -1); "
            f"dd if=/dev/zero of={mount}/filler bs=1k count=$((free - {leave_kb})) 2>/dev/null\n")


def _fit(data: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "transferkit", "fit", str(data), "--backbone", "test_efficientnet", "--weights",
           "random", *args]
    return " ".join(f"'{c}'" for c in cmd)


def test_a_full_cache_disk_is_one_note_and_the_fit_goes_on(can_mount: None, image_folder: Path,
                                                            tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    out = tmp_path / "run"
    done = _in_tmpfs(_fill(mount, 24) + _fit(image_folder, "--cache-dir", str(mount), "--out", str(out)), mount)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    notes = [line for line in done.stderr.splitlines() if "disk is full" in line]
    assert len(notes) == 1 and notes[0].startswith("note:"), done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr


@pytest.fixture(scope="module")
def old_bundle(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle a full disk must leave intact: fitted by the real entry point in this process (one process
    start fewer), copied onto the tmpfs by the test, as `fit --out` there would have written it."""
    out = tmp_path_factory.mktemp("old") / "run"
    code, output = run_cli("fit", image_folder, "--backbone", "test_efficientnet", "--weights", "random",
                           "--no-cache", "--out", out)
    assert code == 0, output[-3000:]
    return out


def test_a_full_disk_when_saving_a_bundle_keeps_the_old_one(can_mount: None, image_folder: Path, old_bundle: Path,
                                                            tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    run = mount / "run"
    script = (f"cp -r '{old_bundle}' '{run}' || exit 3\n"
              f"sha256sum {run}/* > {tmp_path}/before\n"
              + _fill(mount, 4)
              + _fit(image_folder, "--no-cache", "--out", str(run), "--overwrite") + "\n"
              f"rc=$?; sha256sum {run}/* > {tmp_path}/after; exit $rc")
    done = _in_tmpfs(script, mount)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    error = [line for line in lines if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"'{run}'" in error[0] and "the disk is full" in error[0] and "needs" in error[0]
    assert "is intact" in error[0]
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
