"""What the server tests share: generated images, one probe fitted on them through the CLI (once per
session), `running`, which serves a run with uvicorn in a thread on 127.0.0.1, and `request`/`post` to ask it."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.conftest import run_cli

SERVE_COLOURS = {"red": (190, 50, 50), "green": (50, 170, 70), "blue": (50, 70, 200)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
            timeout: float = 30.0) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def post(port: int, body: bytes, content_type: str | None, path: str = "/predict") -> tuple[int, Any, dict[str, str]]:
    return request(port, "POST", path, body, content_type)


@contextmanager
def running(run: Path, options: Any, engine: str = "auto", log_level: str = "warning") -> Iterator[Any]:
    """The app for `run` served by uvicorn in a thread; yields the app (its port as `app.port`)."""
    import transferkit
    from transferkit.serve import build_server, create_app

    app = create_app(transferkit.load(run, cache_dir=False, progress=False), options, name=run.name, engine=engine)
    app.port = free_port()
    server = build_server(app, host="127.0.0.1", port=app.port, options=options, log_level=log_level,
                          access_log=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """colours/<colour>/<i>.jpg|png: 10 noisy images a class, half JPEG, half PNG."""
    root = tmp_path_factory.mktemp("serve-images") / "colours"
    rng = np.random.default_rng(0)
    for name, colour in SERVE_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(10):
            pixels = (np.array(colour)[None, None, :] + rng.normal(0, 60, (36, 44, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture(scope="session")
def image_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init `test_efficientnet` probe on `images`, fitted by `transferkit fit` (read-only for tests)."""
    out = tmp_path_factory.mktemp("serve-runs") / "colours"
    code, output = run_cli("fit", images, "--backbone", "test_efficientnet", "--weights", "random", "--precision",
                           "fp32", "--out", out, "--json", "--no-cache")
    assert code == 0, output
    return out
