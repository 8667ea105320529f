"""`transferkit export`: one ONNX graph that is the model (parity checked, failing when it should),
and a predict from it in a process that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")


def test_export_is_the_model_and_predicts_without_torch(probe_run: Path, image_folder: Path) -> None:
    from transferkit.commands import app
    from transferkit.estimators.load import load

    result = CliRunner().invoke(app, ["export", str(probe_run), str(image_folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "largest probability difference" in " ".join(result.output.split())
    meta = json.loads((probe_run / "onnx" / "export.json").read_text())
    assert meta["parity"]["max_probability_difference"] <= 1e-4
    images = sorted(str(p) for p in image_folder.rglob("*.jpg"))[:6]
    script = (
        "import json, sys\n"
        "from transferkit.commands.predict import run_predict\n"
        f"results = run_predict({str(probe_run)!r}, {images!r}, fmt='json', engine=sys.argv[1])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    expected = load(probe_run).set_params(precision="fp32").predict_proba(images)  # the export is the fp32 model
    for engine in ("onnx", "auto"):  # auto: RUN's own export, as it is of RUN's weights now
        done = subprocess.run([sys.executable, "-c", script, engine], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert (engine == "auto") == ("predicted from the export" in done.stderr)
        exported = json.loads(done.stdout[done.stdout.index("["):])
        for row, p in zip(exported, expected, strict=True):
            assert row["probability"] == pytest.approx(float(p.max()), abs=1e-4)


def test_an_export_of_other_weights_is_not_used(probe_run: Path, image_folder: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from transferkit import bundle
    from transferkit.commands.predict import run_predict
    from transferkit.engines import exported
    from transferkit.estimators.onnx_export import export_model

    assert exported.BUNDLE_WEIGHTS == bundle.WEIGHTS
    run = tmp_path / "run"
    shutil.copytree(probe_run, run, ignore=shutil.ignore_patterns("onnx"))
    export_model(run)
    meta = json.loads((run / "onnx" / "export.json").read_text())
    assert meta["bundle_weights_sha256"] == exported.bundle_digest(run)
    meta["bundle_weights_sha256"] = "0" * 64  # as if the bundle had been refitted since
    (run / "onnx" / "export.json").write_text(json.dumps(meta))
    image = str(next(image_folder.rglob("*.jpg")))
    rows = run_predict(run, [image], fmt="json")
    err = " ".join(capsys.readouterr().err.split())
    assert "exported from other weights" in err and "transferkit export" in err and rows[0]["label"] is not None


def test_a_perturbed_graph_fails_the_parity_check_and_nothing_is_written(probe_run: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from transferkit.errors import EngineError
    from transferkit.estimators.onnx_export import export_model

    def perturb(path: Path) -> None:
        graph = onnx.load(str(path))
        biggest = max(graph.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        values = numpy_helper.to_array(biggest).copy()
        values += 0.5
        biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
        onnx.save(graph, str(path))

    with pytest.raises(EngineError, match="disagrees with PyTorch"):
        export_model(probe_run, tmp_path / "bad", tamper=perturb)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.export-*"))


def test_export_refuses_a_folder_it_did_not_write(probe_run: Path, tmp_path: Path) -> None:
    from transferkit.errors import ConfigError
    from transferkit.estimators.onnx_export import export_model

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="never overwritten"):
        export_model(probe_run, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_fine_tuned_network_exports_whole(image_folder: Path, tmp_path: Path) -> None:
    from transferkit.commands import app
    from transferkit.engines.exported import ExportedModel
    from transferkit.estimators.load import load
    from transferkit.estimators.onnx_export import export_model

    run = tmp_path / "ft"
    result = CliRunner().invoke(app, ["fit", str(image_folder), "--strategy", "finetune", "--backbone",
                                      "test_efficientnet", "--weights", "random", "--epochs", "1", "--out", str(run),
                                      "--json"])
    assert result.exit_code == 0, result.output
    images = sorted(str(p) for p in image_folder.rglob("*.jpg"))[:5]
    report = export_model(run, samples=images)
    assert report.max_difference <= 1e-4
    exported = ExportedModel(report.folder).predict_proba(images)
    assert abs(exported - load(run).predict_proba(images)).max() <= 1e-4
    assert json.loads((report.folder / "export.json").read_text())["estimator"] == "finetuned"


def test_fit_export_writes_the_export_beside_the_bundle(image_folder: Path, tmp_path: Path) -> None:
    from transferkit.commands import app
    from transferkit.engines.exported import bundle_digest

    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["fit", str(image_folder), "--backbone", "test_efficientnet", "--weights",
                                      "random", "--out", str(run), "--export", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["export"]["max_probability_difference"] <= 1e-4 and "given inputs" in summary["export"]["checked_on"]
    meta = json.loads((run / "onnx" / "export.json").read_text())
    assert meta["bundle_weights_sha256"] == bundle_digest(run)
    # an ensemble cannot be one graph: the bundle stands, and the summary says why there is no export
    result = CliRunner().invoke(app, ["fit", str(image_folder), "--backbone", "ensemble:efficientnet_lite0,hog",
                                      "--out", str(tmp_path / "ens"), "--export", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert "ensemble" in summary["export"]["error"] and not (tmp_path / "ens" / "onnx").exists()


def test_fit_export_is_for_images(tmp_path: Path) -> None:
    from transferkit.commands import app

    data = tmp_path / "texts.csv"
    data.write_text("text,label\n" + "".join(f"text number {i},{'ab'[i % 2]}\n" for i in range(20)))
    result = CliRunner().invoke(app, ["fit", str(data), "--text-column", "text", "--export", "--out",
                                      str(tmp_path / "run")])
    from transferkit.errors import ConfigError

    assert isinstance(result.exception, ConfigError) and "--export applies to image data" in str(result.exception)
    assert not (tmp_path / "run").exists()  # refused before anything was fitted or written
