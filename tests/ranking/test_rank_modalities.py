"""`transferkit rank` reads text tables the way `fit` does (column flags decide the modality)."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from transferkit.commands import app


def test_rank_text_table_from_the_cli(tmp_path) -> None:
    path = tmp_path / "reviews.csv"
    topics = {"sport": "the team won the match", "cooking": "simmer the sauce gently"}
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for label, sentence in topics.items():
            for i in range(8):
                writer.writerow([f"{sentence}, take {i}", label])
    result = CliRunner().invoke(app, ["rank", str(path), "--text-column", "text", "--backbones", "minilm",
                                      "--metrics", "logme", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert table["pick"] == "minilm" and "LogME" in table["reason"]


def test_rank_refuses_a_table_of_several_columns(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,image,label\na,b.jpg,x\n")
    result = CliRunner().invoke(app, ["rank", str(path), "--text-column", "text", "--image-column", "image"])
    assert result.exit_code != 0
    assert "one input column" in str(result.exception)
