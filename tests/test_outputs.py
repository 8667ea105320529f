"""The folders transferkit writes (`transferkit.outputs`): marked and recognised by the format they declare, never
inside the data they are made from, and written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transferkit.errors import ConfigError
from transferkit.outputs import MARKER, check_out_outside, mark_output, output_kind, write_atomic


def test_a_folder_is_ours_only_by_the_format_it_declares(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mark_output(cache, "a feature cache")
    assert output_kind(cache) == MARKER
    assert json.loads((cache / MARKER).read_text())["what"] == "a feature cache"
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"format": "transferkit.finetune-run"}')
    assert output_kind(run) == "run.json"
    users = tmp_path / "users"
    users.mkdir()
    (users / "transferkit.json").write_text('{"format": "my-own-thing"}')  # the name alone is not enough
    (users / "curve.json").write_text("not json")
    assert output_kind(users) is None and output_kind(tmp_path / "missing") is None


def test_an_output_inside_its_data_folder_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(ConfigError, match=r"--out '.*runs' is inside the data folder"):
        check_out_outside(data / "runs", data)
    with pytest.raises(ConfigError, match="--report"):
        check_out_outside(data, data, flag="--report")
    check_out_outside(tmp_path / "runs", data)  # beside it: fine
    check_out_outside(data / "runs", tmp_path / "data.csv")  # a manifest file, not a folder: nothing to refuse


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "model.json"
    write_atomic(target, lambda fh: fh.write('{"v": 1}'))
    assert target.read_text() == '{"v": 1}'

    def torn(fh: object) -> None:
        fh.write('{"v": 2, "half')  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, torn)
    assert target.read_text() == '{"v": 1}' and sorted(p.name for p in target.parent.iterdir()) == ["model.json"]
    write_atomic(target, lambda fh: fh.write(b"\x00\x01"), binary=True)
    assert target.read_bytes() == b"\x00\x01"
