"""`transferkit predict` end to end: the table, JSON and CSV outputs, and inputs that cannot be read."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil


def test_predict_table_json_csv(cli, probe_run, image_folder, tmp_path) -> None:
    # inputs whose paths name no class, so a label in the output is the prediction, not the path
    files = [tmp_path / "first.jpg", tmp_path / "second.jpg"]
    shutil.copy(image_folder / "red" / "000.jpg", files[0])
    shutil.copy(image_folder / "blue" / "001.jpg", files[1])
    # stdout alone: a note on stderr (e.g. that the bundle's ONNX export runs it) is not part of the JSON
    run = cli("predict", probe_run, *files, "--json")
    assert run.code == 0, run.output
    rows = json.loads(run.stdout)
    assert [r["label"] for r in rows] == ["red", "blue"]
    assert all(0 < r["probability"] <= 1 for r in rows)
    run = cli("predict", probe_run, *files, "--csv")
    parsed = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [r["label"] for r in parsed] == ["red", "blue"]
    code, output = cli("predict", probe_run, files[0], "--top-k", "2")
    ranked = re.findall(r"│\s*(red|green|blue)\s*│\s*([0-9.]+)\s*│", output)  # the table's label and probability
    assert code == 0 and [label for label, _ in ranked][:1] == ["red"] and len(ranked) == 2, output
    assert float(ranked[0][1]) >= float(ranked[1][1])


def test_predict_reports_unreadable_input(cli, probe_run, image_folder, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    run = cli("predict", probe_run, image_folder / "red" / "000.jpg", bad, "--json")
    assert run.code == 0, run.output
    rows = json.loads(run.stdout)
    assert rows[0]["label"] == "red"
    assert rows[1]["label"] is None and "bad.jpg" in rows[1]["error"]
    code, output = cli("predict", probe_run, bad, "--json")  # nothing could be read: a failure, not exit 0
    assert code == 2 and "none of the 1 input(s) could be read" in output and "bad.jpg" in output
