"""What the commands print (`commands._console`): the class counts, the metrics and where the model went."""

from __future__ import annotations

import re

from tests.commands.conftest import TINY


def test_fit_prints_counts_metrics_and_saves(cli, image_folder, tmp_path) -> None:
    code, output = cli("fit", image_folder, "--out", tmp_path / "m", *TINY)
    assert code == 0, output
    # the class-count table: one row per class with its train / val / test / total counts (10 images each)
    for cls in ("red", "green", "blue"):
        assert re.search(rf"│ {cls}\s+│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│\s+10\s+│", output), output
    assert re.search(r"│ all\s+│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│\s+30\s+│", output)
    assert re.search(r"test \(\d+ examples\)", output) and "confusion matrix" in output
    assert re.search(r"\d+\.\d\d%", output)  # the accuracy figure itself
    assert f"saved {tmp_path / 'm'}" in output.replace("\n", "")
    assert (tmp_path / "m" / "transferkit.json").is_file()
