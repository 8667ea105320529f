"""The report's 'how far is the target?' section, from the shift record a fit with --adapt-to keeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from transferkit.adapt.shift_diagnostic import shift_record
from transferkit.commands import app
from transferkit.report import report_run
from transferkit.report.build import _shifts


def _record() -> dict:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    source = rng.normal(0, 3, (3, 6))[y] + rng.normal(0, 1, (120, 6))
    target = source * 1.5 + 4.0
    aligned = (target - target.mean(0)) / target.std(0) * source.std(0) + source.mean(0)
    return shift_record(source, target, [f"c{v}" for v in y], target_aligned=aligned, alignment="standardize")


def test_the_record_keeps_numbers_verdict_and_map_points() -> None:
    record = json.loads(json.dumps(_record()))  # JSON-able, as the bundle keeps it
    assert record["level"] == "strongly" and record["domain_accuracy_aligned"] < record["domain_accuracy"]
    assert len(record["map"]["panels"]) == 2 and len(record["map"]["labels"]) == 120
    [section] = _shifts({"adaptation": {"shift": record}})
    assert section["plot"].startswith("data:image/png;base64,") and section["title"] is None
    assert section["header"] == ["", "before alignment", "after standardize"]
    assert section["verdict"].startswith("the target differs strongly")
    assert _shifts({}) == [] and _shifts({"adaptation": {"method": "coral"}}) == []
    # a table model: one section per column that has a record, named by it
    columns = {"photo": {"shift": record}, "price": {}, "title": {"shift": record}}
    sections = _shifts({"adaptation": {"columns": columns}})
    assert [s["title"] for s in sections] == ["column 'photo'", "column 'title'"]


def test_report_shows_the_section_when_the_bundle_has_a_shift_record(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = tmp_path / "colours"
    for name, colour in {"red": (190, 50, 50), "blue": (50, 70, 200)}.items():
        (data / name).mkdir(parents=True)
        for i in range(8):
            pixels = (np.array(colour)[None, None, :] + rng.normal(0, 40, (32, 32, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(data / name / f"{i}.png")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(data), "--backbone", "test_efficientnet", "--weights", "random",
                                      "--precision", "fp32", "--out", str(run), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html = report_run(run).read_text()
    assert 'id="target-shift"' not in html  # no target: no section
    manifest_path = run / "transferkit.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["adaptation"] = {"method": "auto", "shift": _record()}  # what the probe's fit with --adapt-to stores
    manifest_path.write_text(json.dumps(manifest))
    html = report_run(run).read_text()
    assert '<section id="target-shift">' in html and 'id="plot-shift"' in html
    assert "differs strongly" in html and "proxy A-distance" in html and "target shift</a>" in html
