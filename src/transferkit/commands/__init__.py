"""The `transferkit` command: one module per command, each a thin layer over the library.

Errors of the `TransferkitError` family are shown as one message without a traceback (`--debug`
shows it). Heavy imports happen inside the commands, so `transferkit --help` stays fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="transferkit",
    help="Transfer learning for your own labelled data: fit, predict, evaluate, compare backbones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}

#: the command modules, in the order `--help` lists them; each has `register(app)`
COMMANDS = ("fit", "predict", "evaluate", "models", "rank", "shift", "curve", "report", "serve", "export", "demo")


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug
    if not debug:  # warnings are the CLI's one-line notes (--debug keeps Python's format, with the source line)
        import warnings

        from transferkit.commands._console import warning_as_note

        warnings.showwarning = warning_as_note


for _name in COMMANDS:
    importlib.import_module(f"transferkit.commands.{_name}").register(app)


def main() -> None:
    """Entry point: run the app, turning transferkit errors into one-line messages."""
    from transferkit.commands._console import err
    from transferkit.errors import TransferkitError

    try:
        app()
    except TransferkitError as exc:
        if _state["debug"]:
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
