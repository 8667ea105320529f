"""`transferkit evaluate` end to end: a fitted run scored on a new folder."""

from __future__ import annotations

import json


def test_evaluate_on_a_new_folder(cli, probe_run, image_folder) -> None:
    code, output = cli("evaluate", probe_run, image_folder, "--json")
    assert code == 0
    metrics = json.loads(output)
    assert metrics["accuracy"] > 0.8 and set(metrics["per_class"]) == {"red", "green", "blue"}
