"""`transferkit report` end to end, through the real entry point: the run's report on data given to it, with the
plots every report holds inlined as PNGs."""

from __future__ import annotations

import re
from pathlib import Path

#: the plots every report holds, whatever the run (tests/report/test_build.py checks each kind's own)
ALWAYS = ("plot-confusion", "plot-per-class", "plot-reliability", "plot-embedding")


def test_cli_report_command(cli, probe_run: Path, image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    code, output = cli("report", probe_run, image_folder, "--out", out, "--no-cache")
    assert code == 0 and "report written" in output and out.is_file(), output
    png = r'<img class="plot" id="([\w-]+)" alt="[^"]*" src="data:image/png;base64,iVBOR'  # a PNG's first bytes
    inlined = re.findall(png, out.read_text())
    assert set(ALWAYS) <= set(inlined)
    code, output = cli("report", tmp_path / "no-run", image_folder, "--out", tmp_path / "x.html")
    assert code == 2 and "no-run" in output and not (tmp_path / "x.html").exists()
