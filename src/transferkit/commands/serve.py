"""`transferkit serve RUN`: a REST API for a trained model."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Any

import typer

from transferkit.params import ENGINE, declared
from transferkit.serve.limits import ServeOptions


def register(app: typer.Typer) -> None:
    """Add the `serve` command to `app`: its limits' flags are generated from `ServeOptions`' declarations."""
    app.command(name="serve")(_with_limit_flags(serve))


def _with_limit_flags(command: Any) -> Any:
    """`command` with a flag for each declared `ServeOptions` setting that has one, in place of `**limits`."""
    signature = inspect.signature(command, eval_str=True)
    hints = typing.get_type_hints(ServeOptions)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    at = [p.name for p in params].index("port") + 1  # the limits' flags follow --port, as they always did
    limits = []
    for name, setting in declared(ServeOptions).items():
        if setting.flags:
            limits.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=setting.default,
                                            annotation=Annotated[hints[name], typer.Option(*setting.flags,
                                                                                           help=setting.help)]))
    command.__signature__ = signature.replace(parameters=[*params[:at], *limits, *params[at:]])
    return command


def serve(
    run: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit`.")],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    no_micro_batching: Annotated[bool, typer.Option("--no-micro-batching",
                                                    help="Run each request alone (for comparison).")] = False,
    precision: Annotated[str | None, typer.Option(help="auto, bf16 or fp32 (default: as the bundle predicts).")
                         ] = None,
    engine: Annotated[str, typer.Option(
        help="auto (the fastest installed engine that agrees with PyTorch), torch, onnxruntime or openvino.")
                      ] = ENGINE.default,
    threads: Annotated[int | None, typer.Option(help="torch threads for the model (default: one per core).")
                       ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
    **limits: Any,
) -> None:
    """Serve RUN over HTTP: POST /predict, GET /health, GET /metadata (OpenAPI at /docs)."""
    from transferkit.serve import serve as run_server

    options = ServeOptions(**limits, micro_batching=not no_micro_batching).validate()
    run_server(run, host=host, port=port, options=options, precision=precision, engine=engine, threads=threads,
               log_level=log_level)
