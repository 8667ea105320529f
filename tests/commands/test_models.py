"""`transferkit models`: the zoo, each entry's features, input size and availability."""

from __future__ import annotations

import json


def test_models_lists_zoo_with_availability(cli) -> None:
    code, output = cli("models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(output)}
    assert rows["efficientnet_lite0"]["available"] is True
    assert rows["efficientnet_lite0"]["features"] == 1280
    assert rows["efficientnet_lite2"]["input"] == "260x260"
