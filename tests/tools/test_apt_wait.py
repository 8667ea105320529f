"""`make test` waits for the apt lock (bounded) instead of failing when another apt or dpkg holds it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("bash") is None,
                                reason="needs make and bash")

FAKE_APT = """#!/bin/sh
# holds 'the lock' for the first {busy} calls, as apt does while another apt runs
n=$(cat "{state}" 2>/dev/null || echo 0); echo $((n + 1)) > "{state}"
echo "$@" >> "{state}.args"
if [ "$n" -lt {busy} ]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
  exit 100
fi
exit 0
"""


def _fake_apt(tmp_path: Path, busy: int) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text(FAKE_APT.format(busy=busy, state=tmp_path / "calls"))
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_every_apt_call_of_make_test_waits_for_the_lock(tmp_path: Path) -> None:
    # the recipes `make test` would run on a fresh machine (a venv folder without its stamps)
    dry = subprocess.run(["make", "-n", "test", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    calls = [line for line in dry.stdout.splitlines() if "apt-get" in line]
    assert calls, dry.stdout
    for line in calls:  # never a bare apt-get, which fails at once on a held lock
        assert "apt-get " not in line.replace("tools/apt-get-wait ", ""), line


def test_the_wrapper_waits_while_the_lock_is_held_then_runs(tmp_path: Path) -> None:
    env = _fake_apt(tmp_path, busy=2)
    done = subprocess.run([str(ROOT / "tools" / "apt-get-wait"), "update", "-q"], env={**env, "APT_LOCK_WAIT": "30"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "waiting" in done.stderr
    args = (tmp_path / "calls.args").read_text().splitlines()
    assert len(args) == 3 and all("DPkg::Lock::Timeout=30" in a for a in args)


def test_the_wait_is_bounded(tmp_path: Path) -> None:
    env = _fake_apt(tmp_path, busy=10**6)
    done = subprocess.run([str(ROOT / "tools" / "apt-get-wait"), "install", "-y", "flite"],
                          env={**env, "APT_LOCK_WAIT": "1"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 100 and "Could not get lock" in done.stderr
