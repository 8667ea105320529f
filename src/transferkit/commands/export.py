"""`transferkit export RUN`: the model as one ONNX graph + its preprocessing, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `export` command to `app`."""
    app.command(name="export")(export)


def export(
    run: Annotated[Path, typer.Argument(help="A folder made by `transferkit fit` (an image probe).")],
    data: Annotated[list[str] | None, typer.Argument(
        help="Images (files or folders) to check the export on; default: generated images.")] = None,
    format: Annotated[str, typer.Option("--format", help="Only onnx for now.")] = "onnx",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The export folder (default RUN/onnx).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an export transferkit wrote there.")] = False,
) -> None:
    """Write the whole model (backbone + head + softmax) as one ONNX graph with its preprocessing as
    JSON, run the same inputs through PyTorch and the export, and fail above a 1e-4 difference in
    probabilities. `transferkit predict RUN/onnx IMAGES` then runs it without PyTorch."""
    from transferkit.commands._console import console
    from transferkit.errors import ConfigError

    if format != "onnx":
        raise ConfigError(f"--format must be onnx; got {format!r}")
    from transferkit.data.images import IMAGE_EXTENSIONS
    from transferkit.data.inputs import expand_inputs
    from transferkit.estimators.onnx_export import MAX_PROBABILITY_DIFFERENCE, export_model

    samples = expand_inputs(data, IMAGE_EXTENSIONS) if data else []
    with console.status("exporting and checking against PyTorch…"):
        report = export_model(run, out, samples=samples, overwrite=overwrite)
    console.print(f"[green]exported[/] {report.folder}  (model.onnx + export.json); largest probability difference "
                  f"against PyTorch {report.max_difference:.2g} ≤ {MAX_PROBABILITY_DIFFERENCE:g} on "
                  f"{report.checked_on}", highlight=False)
    console.print(f"predict without PyTorch: transferkit predict {report.folder} IMAGES…", highlight=False)
