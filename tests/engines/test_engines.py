"""Inference engines: every engine computes PyTorch's features, for every zoo backbone; a graph is
exported once and reused; an engine that is missing or wrong is replaced by a named fallback; an
operator ONNX lacks is named; 2-process extraction equals 1-process extraction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.backbones import create_backbone
from transferkit.backbones.contract import Backbone
from transferkit.cache import FeatureCache
from transferkit.engines import select
from transferkit.engines.graphs import backbone_graph
from transferkit.engines.onnx_graph import export_onnx
from transferkit.engines.run import OnnxRuntimeRunner, is_installed, openvino_has_bf16
from transferkit.errors import ConfigError, EngineError, EngineWarning
from transferkit.features import ExtractOptions, extract_features

GRAPH_ENGINES = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    not is_installed("openvino"), reason="openvino not installed (pip install 'transferkit[openvino]')"))]
FAST = ["efficientnet_lite0", "all-minilm-l6-v2", "ge2e-speaker-encoder", "efficientnet_lite0+logmel"]
SLOW = [pytest.param(name, marks=pytest.mark.slow) for name in ("efficientnet_lite1", "efficientnet_lite2")]
_BACKBONES: dict[str, Backbone] = {}


def backbone(name: str) -> Backbone:
    """Zoo backbones, built once per session."""
    if name not in _BACKBONES:
        _BACKBONES[name] = create_backbone(name)
    return _BACKBONES[name]


def inputs_for(b: Backbone, n: int = 5) -> list[Any]:
    """A few raw inputs of varied sizes/lengths, so padding and resizing are exercised."""
    rng = np.random.default_rng(0)
    if b.modality == "image":
        return [Image.fromarray(rng.integers(0, 256, (60 + 20 * (i % 5), 90 - 10 * (i % 5), 3), dtype=np.uint8))
                for i in range(n)]
    if b.modality == "text":
        words = "the quick brown fox jumps over a lazy dog while seven wizards box nightly".split()
        return [" ".join(rng.choice(words, size=3 + 9 * i)) for i in range(n)]
    return [(0.1 * rng.standard_normal(int(16000 * (0.8 + 0.9 * i))).astype(np.float32), 16000) for i in range(n)]


def options(**kw: Any) -> ExtractOptions:
    return ExtractOptions(**{"progress": False, "num_workers": 0, "batch_size": 8, **kw})


@pytest.fixture()
def graph_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One cache root for the session's exported graphs (features themselves are not cached here)."""
    root = Path(os.environ.get("TK_TEST_GRAPHS") or tmp_path_factory.getbasetemp() / "graphs")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(root))
    return root


def reference(b: Backbone, items: list[Any]) -> np.ndarray:
    return extract_features(b, items, options=options(engine="torch", precision="fp32", optimize=False)).values


@pytest.mark.parametrize("engine", GRAPH_ENGINES)
@pytest.mark.parametrize("name", FAST + SLOW)
def test_every_engine_matches_pytorch_fp32(name: str, engine: str, graph_root: Path) -> None:
    b = backbone(name)
    items = inputs_for(b)
    expected = reference(b, items)
    feats = extract_features(b, items, options=options(engine=engine, precision="fp32"))
    assert (feats.engine, feats.precision) == (engine, "fp32")
    assert feats.parity is not None and feats.parity >= 0.99999
    np.testing.assert_allclose(feats.values, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not is_installed("openvino") or not openvino_has_bf16(), reason="no native bf16 here")
@pytest.mark.parametrize("name", FAST)
def test_openvino_bf16_agrees_with_fp32_where_the_cpu_has_it(name: str, graph_root: Path) -> None:
    b = backbone(name)
    items = inputs_for(b)
    feats = extract_features(b, items, options=options(engine="openvino", precision="bf16"))
    assert (feats.engine, feats.precision) == ("openvino", "bf16")
    expected = reference(b, items)
    cosine = (feats.values * expected).sum(1) / np.linalg.norm(feats.values, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.99


def test_the_exported_graph_is_reused_and_follows_the_weights(graph_root: Path) -> None:
    b = create_backbone("resnet10t", weights="random")
    path, reused = backbone_graph(b, root=graph_root)
    assert path.is_file() and not reused
    mtime = path.stat().st_mtime_ns
    again, reused = backbone_graph(b, root=graph_root)
    assert (again, reused) == (path, True) and again.stat().st_mtime_ns == mtime
    key = json.loads((path.parent / "key.json").read_text())
    assert key["backbone"] == "resnet10t" and key["inputs"][0]["shape"][0] == "batch" and key["opset"] >= 17
    with torch.no_grad():  # same name and weights_id, other numbers (a fine-tuned copy): another graph
        next(b.parameters()).add_(0.01)
    changed, reused = backbone_graph(b, root=graph_root)
    assert changed != path and not reused
    assert not [p for p in graph_root.rglob(".tmp-*")], "no temp files left behind"


def test_auto_picks_an_agreeing_engine_and_says_which(graph_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)  # race even on a handful of inputs
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 6)
    feats = extract_features(b, items, options=options(precision="fp32"))
    assert feats.engine in ("torch", "onnxruntime", "openvino") and feats.precision == "fp32"
    assert any("chose" in note and feats.engine in note for note in feats.notes), feats.notes
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)
    # the choice is remembered for this machine: the next run does not race again
    again = extract_features(b, items, options=options(precision="fp32"))
    assert again.engine == feats.engine and not any("chose" in n and "first batch" in n for n in again.notes)


@pytest.mark.skipif(not is_installed("openvino"), reason="two graph engines race only with openvino installed")
def test_an_engine_that_lost_the_race_is_let_go_before_the_next_is_built(graph_root: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """At most two engines are alive in a race: the fastest so far and the one being timed."""
    import weakref

    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)
    monkeypatch.setattr(select._Remembered, "get", lambda self: None)  # race, whatever was remembered
    real_race, real_open = select._race, select.open_graph
    # the first candidate (torch) stays the fastest, so every graph engine loses
    monkeypatch.setattr(select, "_race", lambda best, challenger, batch, rates:
                        best if best is not None else real_race(best, challenger, batch, rates))
    opened: list[weakref.ref[Any]] = []
    alive_at_open: list[int] = []

    def open_graph(*args: Any, **kwargs: Any) -> Any:
        alive_at_open.append(sum(ref() is not None for ref in opened))
        runner = real_open(*args, **kwargs)
        opened.append(weakref.ref(runner))
        return runner

    monkeypatch.setattr(select, "open_graph", open_graph)
    b = backbone("efficientnet_lite0")
    feats = extract_features(b, inputs_for(b, 6), options=options(precision="fp32"))
    assert feats.engine == "torch" and len(alive_at_open) >= 2
    assert alive_at_open == [0] * len(alive_at_open), "a graph engine that lost was still alive"


def test_an_engine_that_is_not_installed_falls_back_by_name(graph_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "is_installed", lambda engine: engine != "openvino")
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 3)
    with pytest.warns(EngineWarning, match=r"engine 'openvino' is not installed .*running on onnxruntime instead"):
        feats = extract_features(b, items, options=options(engine="openvino", precision="fp32"))
    assert feats.engine == "onnxruntime" and any("not installed" in n for n in feats.notes)


def test_an_engine_that_disagrees_is_not_used(graph_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph whose numbers are off (here: perturbed outputs) never reaches the user."""
    original = OnnxRuntimeRunner.__call__

    def perturbed(self: OnnxRuntimeRunner, inputs: Any) -> np.ndarray:
        out = original(self, inputs)
        return out + np.random.default_rng(0).normal(0, 1.0, out.shape).astype(np.float32)

    monkeypatch.setattr(OnnxRuntimeRunner, "__call__", perturbed)
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 4)
    with pytest.warns(EngineWarning, match=r"onnxruntime fp32 disagrees with PyTorch.*falling back to torch fp32"):
        feats = extract_features(b, items, options=options(engine="onnxruntime", precision="fp32"))
    assert (feats.engine, feats.precision) == ("torch", "fp32")
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)


@torch.library.custom_op("transferkit_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _Mysterious(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mystery(x) + 1


def test_an_operator_onnx_cannot_express_is_named(tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(EngineError, match=r"operator 'transferkit_test\.mystery' has no ONNX conversion"):
        export_onnx(_Mysterious(), {"input": torch.randn(2, 3)}, target, dynamic_axes={"input": {0: "batch"}})
    assert not list(tmp_path.iterdir()), "a failed export leaves nothing behind"


def test_export_onnx_takes_any_module_and_runs_without_torch(tmp_path: Path) -> None:
    """What a bundle export builds on: backbone + head as one graph, run by the numpy-only runner
    in a process where importing torch fails."""
    b = create_backbone("resnet10t", weights="random")
    head = torch.nn.Linear(b.num_features, 3)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.head = b, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.backbone.forward_features(x)).softmax(-1)

    model = Model().eval()
    x = b.example_batch()
    path = export_onnx(model, {"input": x}, tmp_path / "model.onnx", dynamic_axes={"input": {0: "batch"}},
                       output_names=("probabilities",))
    batch = torch.randn(3, *x.shape[1:])
    np.save(tmp_path / "x.npy", batch.numpy())
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import numpy as np\n"
        "from transferkit.engines.run import open_graph\n"
        f"runner = open_graph({str(path)!r}, 'onnxruntime', threads=1)\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, runner({{'input': np.load({str(tmp_path / 'x.npy')!r})}}))\n"
        "assert 'transferkit.backbones' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    with torch.no_grad():
        expected = model(batch).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)


def test_texts_are_batched_longest_first_and_restored_to_input_order(graph_root: Path) -> None:
    b = backbone("all-minilm-l6-v2")
    texts = ["tiny", "a much longer text " * 12, "medium sized sentence here", "", "x y", "another long one " * 6]
    order = b.batch_order(texts)
    assert order is not None and order[0] == 1 and order[-1] == 3  # longest first, the empty text last
    one_by_one = np.stack([reference(b, [t])[0] for t in texts])
    for engine in ("torch", "onnxruntime"):
        feats = extract_features(b, texts, options=ExtractOptions(progress=False, batch_size=4, engine=engine,
                                                                  precision="fp32"))
        np.testing.assert_allclose(feats.values, one_by_one, atol=1e-5)


def test_bad_requests_are_clear_errors(graph_root: Path) -> None:
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 2)
    with pytest.raises(ConfigError, match="engine must be one of"):
        extract_features(b, items, options=options(engine="tensorrt"))
    with pytest.raises(ConfigError, match=r"int8.*openvino"):
        extract_features(b, items, options=options(engine="onnxruntime", precision="int8"))
    with pytest.raises(ConfigError, match="onnxruntime runs fp32"):
        extract_features(b, items, options=options(engine="onnxruntime", precision="bf16"))


def test_an_unreadable_input_is_skipped_on_every_engine(graph_root: Path, tmp_path: Path) -> None:
    b = backbone("efficientnet_lite0")
    good = tmp_path / "ok.jpg"
    inputs_for(b, 1)[0].save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    feats = extract_features(b, [str(good), str(bad)], options=options(engine="onnxruntime", precision="fp32"))
    assert feats.ok.tolist() == [True, False] and 1 in feats.failed and feats.values.shape == (1, b.num_features)


@pytest.mark.slow  # two spawned processes import torch: ~20 s on a quiet 2-core machine
def test_two_processes_give_the_same_features_and_cache_as_one(tmp_path: Path) -> None:
    b = create_backbone("resnet10t", weights="random")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(24):
        path = tmp_path / f"{i:02d}.jpg"
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    one_cache, two_cache = FeatureCache(tmp_path / "one"), FeatureCache(tmp_path / "two")
    opts = options(engine="torch", precision="fp32", batch_size=4)
    one = extract_features(b, paths, options=opts, cache=one_cache)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes about the spawn launcher
        two = extract_features(b, paths, options=options(engine="torch", precision="fp32", batch_size=4, devices=2),
                               cache=two_cache)
    assert any("2 processes" in note for note in two.notes)
    np.testing.assert_allclose(two.values, one.values, atol=1e-5)
    one_vectors, _ = one_cache.read(one_cache.folder(b, "fp32"))
    two_vectors, _ = two_cache.read(two_cache.folder(b, "fp32"))
    assert sorted(one_vectors) == sorted(two_vectors) and len(one_vectors) == len(paths)
    for key, vector in one_vectors.items():
        np.testing.assert_allclose(two_vectors[key], vector, atol=1e-5)
    assert len(list(two_cache.folder(b, "fp32").glob("shard-*"))) >= 2, "each process wrote its own shards"
    again = extract_features(b, paths, options=opts, cache=two_cache)
    assert again.extracted == 0 and again.cached == len(paths)


@pytest.mark.slow
@pytest.mark.skipif(not (is_installed("openvino") and __import__("importlib").util.find_spec("nncf")),
                    reason="int8 needs openvino and nncf (pip install 'transferkit[int8]')")
def test_int8_is_close_to_fp32_and_calibrated_once(graph_root: Path) -> None:
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 24)
    feats = extract_features(b, items, options=options(engine="openvino", precision="int8", calibration=tuple(items)))
    assert (feats.engine, feats.precision) == ("openvino", "int8")
    assert feats.parity is not None and feats.parity >= select.MIN_COSINE["int8"]
    quantized = list(graph_root.rglob("int8-*/model.xml"))
    assert len(quantized) == 1
    mtime = quantized[0].stat().st_mtime_ns
    extract_features(b, items[:4], options=options(engine="openvino", precision="int8", calibration=tuple(items)))
    assert quantized[0].stat().st_mtime_ns == mtime, "the int8 graph is reused, not quantized again"


@pytest.mark.parametrize("name", ["yamnet", "hog"])
def test_a_backbone_with_its_own_engine_runs_as_it_is(name: str, graph_root: Path) -> None:
    """YAMNet ships an ONNX graph (run on onnxruntime), a from-scratch featurizer has no network:
    nothing to export; asking for another engine says it does not apply."""
    try:
        b = create_backbone(name)
    except Exception as exc:  # weights not installed here
        pytest.skip(f"{name}: {exc}")
    items = inputs_for(b, 3)
    with warnings.catch_warnings():  # bf16 (what auto picks on some CPUs) is no request to warn about
        warnings.simplefilter("error", EngineWarning)
        feats = extract_features(b, items, options=options())
        exact = extract_features(b, items, options=options(precision="bf16"))
    assert feats.engine == b.native_engine and feats.values.shape == (3, b.num_features)
    np.testing.assert_array_equal(exact.values, feats.values)
    with pytest.warns(EngineWarning, match="runs on its own engine"):
        forced = extract_features(b, items, options=options(engine="openvino", precision="fp32"))
    np.testing.assert_allclose(forced.values, feats.values, atol=1e-6)


def _signal_stack() -> tuple[int | None, int, int]:
    import ctypes

    class _SignalStack(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    stack = _SignalStack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    return stack.ss_sp, stack.ss_flags, stack.ss_size


@pytest.mark.skipif(not (is_installed("openvino") and sys.platform.startswith("linux")),
                    reason="needs openvino on Linux")
def test_openvino_leaves_the_signal_stack_as_it_found_it(tmp_path: Path) -> None:
    """OpenVINO's CPU plugin swaps this thread's alternate signal stack; left on freed memory, the
    next signal (a DataLoader worker's SIGCHLD) killed the process with SIGSEGV."""
    import gc

    from transferkit.engines.run import open_graph

    path = export_onnx(torch.nn.Linear(4, 3), {"input": torch.randn(2, 4)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    before = _signal_stack()
    first = open_graph(path, "openvino", threads=1)
    second = open_graph(path, "openvino", threads=1)
    x = {"input": np.ones((2, 4), dtype=np.float32)}
    np.testing.assert_allclose(first(x), second(x))
    del first  # gone in the other order than they came
    gc.collect()
    del second
    gc.collect()
    openvino_has_bf16()
    assert _signal_stack() == before


def test_a_remembered_choice_that_stops_winning_is_forgotten(graph_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """The choice remembered for this machine is timed again against its race's runner-up on real
    batches now and then; slower by more than the margin, it is replaced (and the new one remembered)."""
    import time as clock

    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)
    monkeypatch.setattr(select, "RECHECK_EVERY", 1)
    b = backbone("efficientnet_lite0")
    rng = np.random.default_rng(1)
    items = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(20)]
    opts = options(precision="fp32", batch_size=2)
    first = extract_features(b, items[:4], options=opts)  # the race: a choice and a runner-up remembered
    choice_file = max((graph_root / "engines" / "choices").glob("*.json"), key=lambda f: f.stat().st_mtime_ns)
    record = json.loads(choice_file.read_text())
    assert record["runner_up"] and record["choice"] == f"{first.engine} fp32", record
    chosen, runner_up = record["choice"], record["runner_up"]

    slow_engine = chosen.split()[0]
    original = select.GraphEngine.__call__ if slow_engine != "torch" else select.TorchEngine.__call__
    cls = select.GraphEngine if slow_engine != "torch" else select.TorchEngine

    def slowed(self: Any, batch: Any) -> torch.Tensor:
        if self.engine == slow_engine:
            clock.sleep(2.0)  # the remembered engine has become slow on this machine (far beyond noise)
        return original(self, batch)

    monkeypatch.setattr(cls, "__call__", slowed)
    again = extract_features(b, items, options=opts)
    assert again.engine == runner_up.split()[0], again.notes
    assert any("stopped winning" in n for n in again.notes), again.notes
    assert json.loads(choice_file.read_text())["choice"] == runner_up
    np.testing.assert_allclose(again.values, reference(b, items), rtol=1e-3, atol=1e-4)
