"""Running the app with uvicorn: one process, one model, clean shutdown.

On SIGTERM or SIGINT uvicorn stops accepting connections, waits for the requests in flight
(up to the request timeout plus a margin), then the app's lifespan closes the micro-batcher,
which finishes every request it had accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transferkit.params import ENGINE
from transferkit.serve.limits import ServeOptions

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI


def build_server(app: FastAPI, *, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions | None = None,
                 log_level: str = "info", access_log: bool = True) -> uvicorn.Server:
    """A `uvicorn.Server` for `app` (call `.run()`; it handles SIGTERM/SIGINT in the main thread)."""
    import uvicorn

    from transferkit.serve.guard import guarded_protocol

    opts = options or ServeOptions()
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log,
        http=guarded_protocol(opts),  # stalled clients are dropped (--idle-timeout-s, --request-timeout-s)
        timeout_graceful_shutdown=int(min(opts.timeout_s, opts.request_timeout_s)) + 5,
        # a backstop above the batcher's own queue: connections beyond it get 503 from uvicorn
        limit_concurrency=opts.max_queue + 64, backlog=max(128, opts.max_queue), lifespan="on",
        h11_max_incomplete_event_size=64 * 1024,
    )
    return uvicorn.Server(config)


def serve(run: str | Path, *, host: str = "127.0.0.1", port: int = 8000, options: ServeOptions | None = None,
          precision: str | None = None, engine: str = ENGINE.default, threads: int | None = None,
          log_level: str = "info") -> None:
    """Load the bundle at `run` and serve it until SIGTERM/SIGINT.

    `engine`: auto (the fastest installed engine that agrees with PyTorch, per backbone), torch,
    onnxruntime or openvino. `threads`: torch's intra-op threads for the model (default: torch's own
    choice, one per core).
    On a host shared with other busy processes, fewer threads than cores avoids threads waiting
    on each other for a core.
    """
    import torch

    from transferkit.errors import ConfigError
    from transferkit.estimators.load import load
    from transferkit.serve.app import create_app

    opts = (options or ServeOptions()).validate()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be at least 1; got {threads}")
        torch.set_num_threads(threads)
    model = load(Path(run), cache_dir=False, progress=False)
    app = create_app(model, opts, name=Path(run).resolve().name, precision=precision, engine=engine)
    build_server(app, host=host, port=port, options=opts, log_level=log_level).run()
