"""`transferkit rank` reads text tables the way `fit` does (column flags decide the modality)."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from transferkit.commands import app


def _rank_logme(path) -> dict:
    result = CliRunner().invoke(app, ["rank", str(path), "--text-column", "text", "--backbones", "minilm",
                                      "--metrics", "logme", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_rank_text_table_from_the_cli(tmp_path) -> None:
    topics = {"sport": "the team won the match", "cooking": "simmer the sauce gently"}
    for name, shuffled in (("reviews.csv", False), ("shuffled.csv", True)):
        with open(tmp_path / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            for label, sentence in topics.items():
                for i in range(8):  # shuffled: labels that say nothing about the text
                    writer.writerow([f"{sentence}, take {i}", ("sport", "cooking")[i % 2] if shuffled else label])
    table = _rank_logme(tmp_path / "reviews.csv")
    assert table["pick"] == "minilm" and "LogME" in table["reason"]
    # the score comes from the texts of the column: labels the texts explain score higher than labels they do not
    shuffled = _rank_logme(tmp_path / "shuffled.csv")
    real, control = table["candidates"][0]["scores"]["logme"], shuffled["candidates"][0]["scores"]["logme"]
    assert real > control + 0.1, (real, control)


def test_rank_refuses_a_table_of_several_columns(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,image,label\na,b.jpg,x\n")
    result = CliRunner().invoke(app, ["rank", str(path), "--text-column", "text", "--image-column", "image"])
    assert result.exit_code != 0
    assert "one input column" in str(result.exception)
