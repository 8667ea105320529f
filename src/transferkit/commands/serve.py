"""`transferkit serve RUN`: a REST API for a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transferkit.serve.limits import ServeOptions

_D = ServeOptions()


def register(app: typer.Typer) -> None:
    """Add the `serve` command to `app`."""
    app.command(name="serve")(serve)


def serve(
    run: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", help="Largest request body, in MB.")] = _D.max_body_mb,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Largest image, in pixels.")] = _D.max_pixels,
    max_audio_s: Annotated[float, typer.Option("--max-audio-s", help="Longest audio clip, in seconds.")
                           ] = _D.max_audio_s,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Most inputs per request and per model batch.")
                         ] = _D.max_batch,
    batch_window_ms: Annotated[float, typer.Option(
        "--batch-window-ms", help="How long a request waits for others to share its batch.")] = _D.batch_window_ms,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests waiting at most; more get 503 + "
                                                               "Retry-After.")] = _D.max_queue,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Longest a request waits for its result.")
                         ] = _D.timeout_s,
    idle_timeout_s: Annotated[float, typer.Option(
        "--idle-timeout-s", help="Drop a client that sends nothing for this long mid-request (408).")
                              ] = _D.idle_timeout_s,
    request_timeout_s: Annotated[float, typer.Option(
        "--request-timeout-s", help="Answer every request within this long of its first byte (408/503 after).")
                                 ] = _D.request_timeout_s,
    no_micro_batching: Annotated[bool, typer.Option("--no-micro-batching",
                                                    help="Run each request alone (for comparison).")] = False,
    precision: Annotated[str | None, typer.Option(help="auto, bf16 or fp32 (default: as the bundle predicts).")
                         ] = None,
    engine: Annotated[str, typer.Option(
        help="auto (the fastest installed engine that agrees with PyTorch), torch, onnxruntime or openvino.")
                      ] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch threads for the model (default: one per core).")
                       ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
) -> None:
    """Serve RUN over HTTP: POST /predict, GET /health, GET /metadata (OpenAPI at /docs)."""
    from transferkit.serve import serve as run_server

    options = ServeOptions(max_body_mb=max_body_mb, max_pixels=max_pixels, max_audio_s=max_audio_s,
                           max_batch=max_batch, batch_window_ms=batch_window_ms, max_queue=max_queue,
                           timeout_s=timeout_s, micro_batching=not no_micro_batching,
                           idle_timeout_s=idle_timeout_s, request_timeout_s=request_timeout_s).validate()
    run_server(run, host=host, port=port, options=options, precision=precision, engine=engine, threads=threads,
               log_level=log_level)
