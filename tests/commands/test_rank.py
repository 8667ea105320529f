"""`transferkit rank`: the table or the JSON a user reads, the pick the metric chose, `--layers`, and the
errors a user sees (exit code 2, one line). On tiny random-init networks: which backbone transfers better
is the ranking package's to test (`tests/ranking/`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import CliRun, run_cli

CANDIDATES = "test_efficientnet@random,hog"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache for the file."""
    return tmp_path_factory.mktemp("rank-cache")


@pytest.fixture(scope="module")
def ranked(image_folder: Path, cache: Path) -> CliRun:
    """The JSON ranking, run once for the file: it fills the cache the table's run then reads, whichever
    test runs first or alone."""
    return run_cli("rank", image_folder, "--backbones", CANDIDATES, "--metrics", "logme,leep", "--select",
                   "logme", "--json", "--cache-dir", cache)


def test_rank_json_says_the_pick_and_why(ranked: CliRun) -> None:
    code, output = ranked
    assert code == 0, output
    report = json.loads(output[output.index("{"):])
    scores = {c["name"]: c["scores"]["logme"] for c in report["candidates"]}
    assert set(scores) == {"test_efficientnet@random", "hog"} and report["metrics"][:2] == ["logme", "leep"]
    assert report["pick"] == max(scores, key=scores.__getitem__) and report["picked_by"] == "logme"
    assert "highest LogME" in report["reason"] and report["n_classes"] == 3
    # hog has no pretrained head: LEEP is a stated blank there, not a number
    hog = next(c for c in report["candidates"] if c["name"] == "hog")
    assert hog["scores"]["leep"] is None and hog["missing"]["leep"]


def test_rank_prints_a_table_with_the_pick(cli: Callable[..., tuple[int, str]], image_folder: Path,
                                           cache: Path, ranked: CliRun) -> None:
    code, output = cli("rank", image_folder, "--backbones", CANDIDATES, "--metrics", "logme", "--cache-dir", cache)
    assert code == 0, output
    assert "transferability ranking" in output and "pick:" in output
    assert "test_efficientnet@random" in output and "hog" in output
    assert "features from the cache (nothing extracted)" in output  # the JSON run (`ranked`) extracted them


def test_rank_layers_lists_each_stage(cli: Callable[..., tuple[int, str]], image_folder: Path,
                                      cache: Path) -> None:
    code, output = cli("rank", image_folder, "--backbones", "test_efficientnet@random", "--metrics", "logme",
                       "--layers", "--json", "--cache-dir", cache)
    assert code == 0, output
    names = [c["name"] for c in json.loads(output[output.index("{"):])["candidates"]]
    assert names[0].endswith(":stage1") and names[-1].endswith(":final") and len(names) >= 3


@pytest.mark.parametrize(("args", "message"), [
    (("--metrics", "logmee"), "unknown transferability metric"),
    (("--backbones", "test_efficientnet@"), "NAME@WEIGHTS"),
])
def test_bad_flags_are_one_line_and_exit_code_2(cli: Callable[..., tuple[int, str]], image_folder: Path,
                                                args: tuple[str, ...], message: str) -> None:
    code, output = cli("rank", image_folder, *args)
    assert code == 2 and message in output and "Traceback" not in output, output


def test_a_table_is_refused(cli: Callable[..., tuple[int, str]], tmp_path: Path) -> None:
    table = tmp_path / "rows.csv"
    table.write_text("text,n,label\nred apple,1,a\ngreen leaf,2,b\n" * 4)
    code, output = cli("rank", table, "--modality", "table")
    # rank's own words, not fit's refusal of `--backbone auto` on a table (a flag the user never gave)
    assert code == 2 and "rank scores one input column at a time" in output and "--backbone" not in output, output
