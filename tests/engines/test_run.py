"""Running a graph (`engines.run`): onnxruntime and OpenVINO compute PyTorch's features for every zoo backbone,
in input order, in one process or two, and OpenVINO leaves the thread's signal stack as it found it."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.engines.conftest import FAST, GRAPH_ENGINES, SLOW, backbone, inputs_for, options, reference

from transferkit.backbones import create_backbone
from transferkit.cache import FeatureCache
from transferkit.engines.onnx_graph import export_onnx
from transferkit.engines.run import is_installed, openvino_has_bf16
from transferkit.features import ExtractOptions, extract_features


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
    """bf16 agrees with fp32 (cosine >= 0.99) or is refused with the reason and torch fp32 runs instead: the
    log-mel block of generated noise read 0.985 on OpenVINO and 0.992 on torch bf16 (AVX-512 BF16, no AMX)."""
    b = backbone(name)
    items = inputs_for(b)
    expected = reference(b, items)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = extract_features(b, items, options=options(engine="openvino", precision="bf16"))
    if "+logmel" in name and feats.engine == "torch":
        assert feats.precision == "fp32" and any("disagrees with PyTorch fp32" in str(w.message) for w in caught)
        np.testing.assert_allclose(feats.values, expected, rtol=1e-3, atol=1e-4)
        return
    assert (feats.engine, feats.precision) == ("openvino", "bf16")
    cosine = (feats.values * expected).sum(1) / np.linalg.norm(feats.values, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.99


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


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_openvino_reuses_what_it_compiled_with_the_same_features(tmp_path: Path) -> None:
    """With a cache folder, OpenVINO keeps its compiled model there and later runners import it (an
    extraction call no longer compiles the graph again); a damaged blob is compiled again, not trusted."""
    from transferkit.engines.run import open_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten()).eval()
    path = export_onnx(model, {"input": torch.randn(2, 3, 16, 16)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    x = {"input": np.random.default_rng(0).normal(size=(3, 3, 16, 16)).astype(np.float32)}
    plain = open_graph(path, "openvino", threads=1)(x)
    compiled = tmp_path / "compiled"
    first = open_graph(path, "openvino", threads=1, cache_dir=compiled)(x)
    blobs = list(compiled.glob("*.blob"))
    assert len(blobs) == 1 and blobs[0].stat().st_size > 0
    written = blobs[0].stat().st_mtime_ns
    again = open_graph(path, "openvino", threads=1, cache_dir=compiled)(x)
    assert blobs[0].stat().st_mtime_ns == written, "the second runner imports the blob, it does not write it again"
    np.testing.assert_array_equal(first, plain)
    np.testing.assert_array_equal(again, plain)
    blobs[0].write_bytes(b"not a compiled model")
    np.testing.assert_array_equal(open_graph(path, "openvino", threads=1, cache_dir=compiled)(x), plain)
    assert blobs[0].stat().st_size > len(b"not a compiled model"), "a damaged blob is replaced"


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_extraction_keeps_openvinos_compiled_model_beside_the_graph(graph_root: Path) -> None:
    b = backbone("efficientnet_lite0")
    extract_features(b, inputs_for(b), options=options(engine="openvino", precision="fp32"))
    assert list((graph_root / "engines").glob("efficientnet_lite0-*/openvino-compiled/*.blob"))


class _Wrapped:
    """A runner wrapped by a test: every batch goes through `__call__` (which a test overrides), one run at a
    time, and anything else to the runner."""

    def __init__(self, runner: object) -> None:
        self.runner = runner

    def __getattr__(self, name: str) -> object:
        return getattr(self.runner, name)

    def __call__(self, arrays: object) -> np.ndarray:
        return self.runner(arrays)  # type: ignore[operator]

    def run_all(self, runs: list[object]) -> list[np.ndarray]:
        return [self(arrays) for arrays in runs]

    def start_all(self, runs: list[object]) -> object:
        outs = self.run_all(runs)
        return lambda: outs


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_a_model_cache_whose_import_differs_is_marked_untrusted_and_not_used(tmp_path: Path, monkeypatch) -> None:
    """A blob compiled and written by an extraction is imported once and compared with the compiled model on
    the first samples; an import that differs (as OpenVINO 2026.4 did with GE2E's LSTM on an AVX-512 CPU)
    marks the cache untrusted, the graph is compiled again without the cache and used, and later extractions
    compile without the cache."""
    import transferkit.engines.select as select

    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(tmp_path / "engines"))
    real_open = select.open_graph
    opened: list[bool] = []

    class Wrong(_Wrapped):  # what a faulty import gives: another model's features
        def __call__(self, arrays: object) -> np.ndarray:
            return np.roll(self.runner(arrays), 1, axis=1)  # type: ignore[operator]

    def open_graph(path: Path, name: str, precision: str, threads: int, cache_dir: Path | None = None,
                   throughput: bool = False, reuse: bool = False) -> object:
        imported = cache_dir is not None and any(Path(cache_dir).glob("*.blob"))
        opened.append(cache_dir is not None)
        runner = real_open(path, name, precision, threads, cache_dir=cache_dir, throughput=throughput)
        return Wrong(runner) if imported else runner

    monkeypatch.setattr(select, "open_graph", open_graph)
    b = create_backbone("test_efficientnet", weights="random", seed=0).eval()
    items = inputs_for(b)
    expected = reference(b, items)
    first = extract_features(b, items, options=options(engine="openvino", precision="fp32"))
    assert opened == [True, True, False], "compiled with the cache, its blob imported once to check it, compiled again"
    marks = list((tmp_path / "engines").glob("*/openvino-compiled/untrusted.json"))
    assert len(marks) == 1 and "min cosine" in marks[0].read_text()
    assert first.engine == "openvino" and any("model cache" in note for note in first.notes)
    np.testing.assert_allclose(first.values, expected, rtol=1e-3, atol=1e-4)
    again = extract_features(b, items, options=options(engine="openvino", precision="fp32"))
    assert opened[3:] == [False], "an untrusted cache is not used again"
    np.testing.assert_allclose(again.values, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_a_blob_just_written_is_checked_with_one_compiled_model_alive_and_its_import_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model compiled (its blob written to OpenVINO's cache) runs the first samples and is let go before
    the blob is imported to check it, and the imported model extracts: MiniLM compiled and imported side by
    side had taken a first text fit to 1.49 GB."""
    import weakref

    import transferkit.engines.select as select

    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(tmp_path / "engines"))
    real_open = select.open_graph
    opened: list[tuple[bool, weakref.ref[Counting]]] = []
    alive_at_open: list[int] = []

    class Counting(_Wrapped):  # the runner, with its calls counted
        calls = 0

        def __call__(self, arrays: object) -> np.ndarray:
            self.calls += 1
            return self.runner(arrays)  # type: ignore[operator]

    def open_graph(path: Path, name: str, precision: str, threads: int, cache_dir: Path | None = None,
                   throughput: bool = False, reuse: bool = False) -> object:
        alive_at_open.append(sum(ref() is not None for _, ref in opened))
        imported = cache_dir is not None and any(Path(cache_dir).glob("*.blob"))
        runner = Counting(real_open(path, name, precision, threads, cache_dir=cache_dir, throughput=throughput,
                                    reuse=reuse))
        opened.append((imported, weakref.ref(runner)))
        if imported:
            kept.append(runner)
        return runner

    kept: list[Counting] = []
    monkeypatch.setattr(select, "open_graph", open_graph)
    b = create_backbone("test_efficientnet", weights="random", seed=0).eval()
    items = inputs_for(b, 12)
    feats = extract_features(b, items, options=options(engine="openvino", precision="fp32"))
    assert [imported for imported, _ in opened] == [False, True], "compiled (blob written), then imported once"
    assert alive_at_open == [0, 0], "the compiled model was still alive when its blob was imported"
    assert not any("model cache" in note for note in feats.notes)
    assert kept[0].calls >= 3, "the imported model checked, then ran the extraction's batches"
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="onnxruntime not installed")
def test_importing_transferkit_turns_onnxruntimes_telemetry_off_unless_the_user_chose(tmp_path: Path) -> None:
    """onnxruntime's usage telemetry (a thread per process recording events to upload) is off once transferkit is
    imported; a value the user set is kept. Checked in fresh processes, where onnxruntime reads it on import."""
    import os
    import subprocess

    code = ("import os, transferkit, onnxruntime\n"
            "print(os.environ['ORT_DISABLE_TELEMETRY'])\n")
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "ORT_DISABLE_TELEMETRY": "0"},
                            capture_output=True, text=True, check=True)
    assert (plain.stdout.strip(), chosen.stdout.strip()) == ("1", "0")


def test_importing_transferkit_keeps_openvino_from_sending_telemetry_unless_the_user_opted_in(tmp_path: Path) -> None:
    """OpenVINO sends a usage event on import (a forked process posting to Google Analytics) and writes a client
    id under ~/intel, unless declined: with transferkit imported first it uses its own no-op stub, nothing is
    written under HOME, and no child process is started; a user whose consent file reads "1" keeps it."""
    import os
    import subprocess

    code = ("import multiprocessing, transferkit, openvino, sys\n"
            "print(sys.modules.get('openvino_telemetry') is None, len(multiprocessing.active_children()))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "HOME": str(tmp_path)}
    env.pop("CI", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "0"], out.stdout + out.stderr
    assert not (tmp_path / "intel").exists()  # no client id, no stats file
    (tmp_path / "intel").mkdir()
    (tmp_path / "intel" / "openvino_telemetry").write_text("1")
    opted_in = subprocess.run([sys.executable, "-c", "import transferkit, sys\n"
                               "print(sys.modules.get('openvino_telemetry', 'absent'))"],
                              env=env, capture_output=True, text=True, check=True)
    assert opted_in.stdout.strip() == "absent"  # left for OpenVINO to import and honour


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_openvino_for_throughput_runs_on_streams_with_the_same_outputs_in_order(tmp_path: Path) -> None:
    """Opened for throughput, OpenVINO runs several inputs at once (one per stream) and hands each output back
    in the order of the runs, the same numbers as the latency runner's one after the other."""
    from transferkit.engines.run import open_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten()).eval()
    path = export_onnx(model, {"input": torch.randn(2, 3, 16, 16)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    rng = np.random.default_rng(0)
    runs = [{"input": rng.normal(size=(3, 3, 16, 16)).astype(np.float32)} for _ in range(5)]
    latency = open_graph(path, "openvino", threads=2)
    throughput = open_graph(path, "openvino", threads=2, throughput=True)
    assert latency.parallel_runs == 1 and throughput.parallel_runs >= 1
    expected = [latency(x) for x in runs]
    for runner in (latency, throughput):
        outs = runner.run_all(runs)
        assert len(outs) == len(runs)
        for out, want in zip(outs, expected, strict=True):
            np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(throughput(runs[0]), expected[0])
    with torch.inference_mode():
        np.testing.assert_allclose(expected[0], model(torch.from_numpy(runs[0]["input"])).numpy(), atol=1e-5)


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_openvino_runs_started_before_the_last_ones_are_collected_give_each_call_its_own_outputs(tmp_path: Path) \
        -> None:
    """On streams, a call's runs start before the call before it is collected (more runs than requests in flight,
    so requests are taken over from the earlier call): each call gets its own outputs, in order, the numbers of
    the runs made one at a time; a call of no runs gives none."""
    from transferkit.engines.run import open_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten()).eval()
    path = export_onnx(model, {"input": torch.randn(2, 3, 16, 16)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    rng = np.random.default_rng(0)
    calls = [[{"input": rng.normal(size=(2, 3, 16, 16)).astype(np.float32)} for _ in range(n)] for n in (7, 3, 9)]
    latency = open_graph(path, "openvino", threads=2)
    throughput = open_graph(path, "openvino", threads=2, throughput=True)
    first = throughput.start_all(calls[0])
    second = throughput.start_all(calls[1])
    third = throughput.start_all(calls[2])
    for started, runs in zip((first, second, third), calls, strict=True):
        outs = started()
        assert len(outs) == len(runs)
        for out, inputs in zip(outs, runs, strict=True):
            np.testing.assert_array_equal(out, latency(inputs))
    assert throughput.start_all([])() == []


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_a_run_that_fails_on_a_stream_is_an_error_and_the_runner_still_works(tmp_path: Path) -> None:
    """Inputs of the wrong shape among the runs: OpenVINO's error comes out (the runs in flight are waited for,
    their inputs are read in place), and the runner gives the right outputs afterwards."""
    from transferkit.engines.run import open_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten()).eval()
    path = export_onnx(model, {"input": torch.randn(2, 3, 16, 16)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    runner = open_graph(path, "openvino", threads=2, throughput=True)
    good = {"input": np.ones((2, 3, 16, 16), dtype=np.float32)}
    with pytest.raises(RuntimeError):
        runner.run_all([good, good, {"input": np.ones((2, 5, 16, 16), dtype=np.float32)}, good])
    with torch.inference_mode():
        expected = model(torch.from_numpy(good["input"])).numpy()
    for out in runner.run_all([good, good, good]):
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_a_runner_kept_by_one_call_is_handed_to_the_next_call_of_the_same_graph(tmp_path: Path) -> None:
    """`open_graph(reuse=True)` hands out the runner `keep` set aside for the same graph file and settings (taken
    while in use), and a new one for anything else: another thread count or version of the file, after
    `forget_kept`; a runner not opened for reuse is not kept, and one kept is let go when another is opened."""
    from transferkit.engines import run
    from transferkit.engines.run import forget_kept, keep, open_graph

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    example = {"input": torch.randn(2, 3, 8, 8)}
    path = export_onnx(model, example, tmp_path / "model.onnx", dynamic_axes={"input": {0: "batch"}})
    x = {"input": np.ones((2, 3, 8, 8), dtype=np.float32)}
    forget_kept()
    first = open_graph(path, "onnxruntime", threads=1, reuse=True)
    expected = first(x)
    keep(first)
    again = open_graph(path, "onnxruntime", threads=1, reuse=True)
    assert again is first
    np.testing.assert_array_equal(again(x), expected)
    assert open_graph(path, "onnxruntime", threads=1, reuse=True) is not first, "taken while in use"
    keep(again)
    keep(open_graph(path, "onnxruntime", threads=1))  # not opened for reuse: not kept
    assert run._KEPT == [first]
    other = open_graph(path, "onnxruntime", threads=2, reuse=True)
    assert other is not first and run._KEPT == [], "the runner kept for other settings is let go"
    keep(other)
    keep(first)
    assert run._KEPT == [first], "one runner kept at most"
    export_onnx(model, example, tmp_path / "model.onnx", dynamic_axes={"input": {0: "batch"}})  # written again
    changed = open_graph(path, "onnxruntime", threads=1, reuse=True)
    assert changed is not first
    keep(changed)
    forget_kept()
    assert run._KEPT == [] and open_graph(path, "onnxruntime", threads=1, reuse=True) is not changed


@pytest.mark.parametrize("engine", GRAPH_ENGINES)
def test_the_next_extraction_call_runs_on_the_runner_the_last_one_kept(engine: str, graph_root: Path) -> None:
    """An extraction call keeps its graph engine's runner (compiled model, session) for the next call of the
    same graph in this process, which gives the same features bit for bit without opening the graph again; a
    call on anything else lets it go."""
    from transferkit.engines import run

    b = backbone("all-minilm-l6-v2")
    items = inputs_for(b, 6)
    first = extract_features(b, items, options=options(engine=engine, precision="fp32"))
    kept = run._KEPT[0]
    again = extract_features(b, items, options=options(engine=engine, precision="fp32"))
    assert run._KEPT == [kept] and kept.release_after_run is False
    assert (first.engine, again.engine) == (engine, engine)
    np.testing.assert_array_equal(again.values, first.values)
    extract_features(b, items, options=options(engine="torch", precision="fp32"))
    assert run._KEPT == [], "a call that does not run on the kept runner lets it go"
