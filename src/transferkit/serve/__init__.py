"""A REST server for a trained bundle: FastAPI + uvicorn, with micro-batching and input limits.

    transferkit serve runs/photos --port 8000     # POST /predict, GET /health, GET /metadata, /docs

From Python: `create_app(transferkit.load(run), ServeOptions(...))` is an ASGI app.
Heavy modules (torch, FastAPI) are imported on first use, so the CLI's `--help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ServeOptions", "build_server", "create_app", "serve"]

_LAZY = {
    "ServeOptions": "transferkit.serve.limits",
    "build_server": "transferkit.serve.server",
    "create_app": "transferkit.serve.app",
    "serve": "transferkit.serve.server",
}

if TYPE_CHECKING:
    from transferkit.serve.app import create_app
    from transferkit.serve.limits import ServeOptions
    from transferkit.serve.server import build_server, serve


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transferkit.serve' has no attribute '{name}'")
