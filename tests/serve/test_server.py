"""The server process (`serve.server`, through `transferkit serve`): SIGTERM finishes the requests it accepted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.serve.conftest import SERVE_COLOURS as COLOURS
from tests.serve.conftest import free_port, post, request


@pytest.mark.slow  # above ~10 s on a quiet 2-core machine: its file is handed out first
def test_sigterm_finishes_the_requests_it_accepted(image_run: Path, images: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferkit", "serve", str(image_run), "--port", str(port),
                             "--batch-window-ms", "1500", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if request(port, "GET", "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        one = next(images.rglob("*.png")).read_bytes()
        with ThreadPoolExecutor(2) as pool:
            accepted = pool.submit(post, port, one, "image/png")
            time.sleep(0.4)  # the request now waits in its 1.5 s batch window
            proc.send_signal(signal.SIGTERM)
            status, body, _ = accepted.result(timeout=60)
        assert status == 200 and body["predictions"][0]["label"] in COLOURS
        # uvicorn shuts down cleanly, then re-raises the signal it caught: the conventional exit of a
        # process stopped by SIGTERM (what systemd and Kubernetes expect)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "Traceback" not in output and "ERROR" not in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
