"""Which engine extraction runs on (`engines.select`): `auto` races the engines and remembers the winner (and
forgets it when it stops winning); an engine that is missing or wrong is replaced by a named fallback;
bad requests are clear errors; a backbone with its own engine runs as it is."""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tests.engines.conftest import backbone, inputs_for, options, reference

from transferkit.backbones import create_backbone
from transferkit.engines import select
from transferkit.engines.run import OnnxRuntimeRunner, is_installed
from transferkit.errors import ConfigError, EngineWarning
from transferkit.features import extract_features


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


@pytest.mark.skipif(not (is_installed("onnxruntime") and is_installed("openvino")), reason="needs both graph engines")
def test_onnxruntime_races_before_openvino_beside_no_other_graph_engine(graph_root: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under auto ONNX Runtime is the first graph engine raced (against torch, whose model is the backbone
    itself), so its session and run never sit beside OpenVINO's compiled model (raced last it had: a first text
    fit's peak, 1.53 GB); every candidate still races, and the fastest wins."""
    import weakref

    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)
    monkeypatch.setattr(select._Remembered, "get", lambda self: None)  # race, whatever was remembered
    real_race, real_open = select._race, select.open_graph

    def challenger_wins(best: Any, challenger: Any, batch: Any, rates: Any) -> Any:
        real_race(best, challenger, batch, rates)
        return challenger  # each graph engine stays alive while the next one opens, as a winner would

    monkeypatch.setattr(select, "_race", challenger_wins)
    opened: list[tuple[str, weakref.ref[Any]]] = []
    alive_at_open: list[tuple[str, list[str]]] = []

    def open_graph(path: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        alive_at_open.append((name, [n for n, ref in opened if ref() is not None]))
        runner = real_open(path, name, *args, **kwargs)
        opened.append((name, weakref.ref(runner)))
        return runner

    monkeypatch.setattr(select, "open_graph", open_graph)
    b = create_backbone("resnet10t", weights="random")  # small: the race is what is looked at
    feats = extract_features(b, inputs_for(b, 6), options=options(precision="fp32"))
    assert alive_at_open[0] == ("onnxruntime", []), alive_at_open
    assert {name for name, _ in alive_at_open} == {"onnxruntime", "openvino"}
    assert feats.engine == "openvino" and any("onnxruntime fp32" in note for note in feats.notes), feats.notes


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
    # the one candidate that failed is given back (its session, its buffers) before the torch fallback is made
    released: list[bool] = []
    monkeypatch.setattr(select, "release_memory", lambda: released.append(True))

    def noting_releases(real: Any, at: list[int]) -> Any:
        """`real`, noting in `at` how many releases came before each call."""
        def call(*args: Any, **kwargs: Any) -> Any:
            at.append(len(released))
            return real(*args, **kwargs)
        return call

    released_at_torch: list[int] = []
    released_at_open: list[int] = []
    monkeypatch.setattr(select, "TorchEngine", noting_releases(select.TorchEngine, released_at_torch))
    monkeypatch.setattr(select, "open_graph", noting_releases(select.open_graph, released_at_open))
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 4)
    with pytest.warns(EngineWarning, match=r"onnxruntime fp32 disagrees with PyTorch.*falling back to torch fp32"):
        feats = extract_features(b, items, options=options(engine="onnxruntime", precision="fp32"))
    assert (feats.engine, feats.precision) == ("torch", "fp32")
    assert released_at_torch[-1] > released_at_open[-1], "the torch fallback was made before the failed engine's " \
                                                            "memory went back"
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)


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


@pytest.mark.slow  # above ~10 s on a quiet 2-core machine: its file is handed out first
def test_a_remembered_choice_that_stops_winning_is_forgotten(graph_root: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    """The choice remembered for this machine is timed again against its race's runner-up on real
    batches now and then; slower by more than the margin, it is replaced (and the new one remembered)."""
    import time as clock

    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)
    monkeypatch.setattr(select, "RECHECK_EVERY", 1)
    monkeypatch.setattr(select, "RECHECK_MIN_BATCHES", 10)  # the run below has 10 batches
    # an engines folder of its own: the session's shared one may hold a choice an earlier test of this worker
    # remembered for the same graph and batch size, and then the first call below would not race
    engines = tmp_path / "engines"
    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(engines))
    b = backbone("efficientnet_lite0")
    rng = np.random.default_rng(1)
    items = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)) for _ in range(20)]
    opts = options(precision="fp32", batch_size=2)
    first = extract_features(b, items[:4], options=opts)  # the race: a choice and a runner-up remembered
    (choice_file,) = (engines / "choices").glob("*.json")
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


@pytest.fixture()
def onnxruntime_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each ONNX Runtime call, in order."""
    calls: list[int] = []
    original = OnnxRuntimeRunner.__call__

    def counted(self: OnnxRuntimeRunner, inputs: Any) -> np.ndarray:
        calls.append(len(next(iter(inputs.values()))))
        return original(self, inputs)

    monkeypatch.setattr(OnnxRuntimeRunner, "__call__", counted)
    return calls


def test_a_candidate_alone_runs_the_first_batch_once(graph_root: Path, onnxruntime_rows: list[int]) -> None:
    """An engine named (or remembered) runs the whole first batch once, its first rows checked against
    PyTorch, not the first samples and then the batch again: one engine call per batch of texts."""
    calls = onnxruntime_rows
    b = backbone("all-minilm-l6-v2")
    items = inputs_for(b, 14)
    feats = extract_features(b, items, options=options(engine="onnxruntime", precision="fp32", batch_size=10))
    assert feats.engine == "onnxruntime" and feats.parity is not None and feats.parity >= 0.99999
    assert sorted(calls) == [4, 10], calls
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)


def test_a_graph_checked_once_in_a_process_is_not_checked_again(graph_root: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A later extraction call of the same graph on the same engine and precision (a fit's validation, views,
    test split) does not build PyTorch's reference again, and says so; another engine, or the same backbone
    with other weights, is checked again."""
    references: list[int] = []
    real = select.TorchEngine.__call__

    def counted(self: select.TorchEngine, batch: Any) -> torch.Tensor:
        out = real(self, batch)
        references.append(int(out.shape[0]))  # a named graph engine: torch runs only as the reference
        return out

    monkeypatch.setattr(select.TorchEngine, "__call__", counted)
    b = create_backbone("all-minilm-l6-v2")  # its own copy: its weights are changed below
    items = inputs_for(b, 12)
    opts = options(engine="onnxruntime", precision="fp32")
    first = extract_features(b, items[:6], options=opts)
    assert references == [6] and not any("checked earlier" in n for n in first.notes), first.notes
    again = extract_features(b, items[6:], options=opts)
    assert references == [6], "PyTorch's reference was built again for a graph checked in this process"
    assert again.engine == "onnxruntime" and again.parity == first.parity
    assert any("checked earlier in this process" in n for n in again.notes), again.notes
    if is_installed("openvino"):  # another engine of the same graph: checked
        other = extract_features(b, items[6:], options=options(engine="openvino", precision="fp32"))
        assert other.engine == "openvino" and references == [6, 6], references
    with torch.no_grad():  # other weights (a fine-tuned copy keeps its name and weights_id): checked again
        next(iter(b.graph_parts().module.parameters())).mul_(1.01)
    changed = extract_features(b, items[6:], options=opts)
    assert references[-1] == 6 and len(references) == 2 + is_installed("openvino"), references
    assert not any("checked earlier" in n for n in changed.notes), changed.notes
    np.testing.assert_allclose(changed.values, reference(b, items[6:]), rtol=1e-3, atol=1e-4)


def test_a_batch_of_images_runs_on_a_graph_engine_a_few_rows_at_a_time(graph_root: Path, onnxruntime_rows: list[int],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph engine's buffers scale with the rows of a run: a batch of images runs `GRAPH_ROWS` rows at a
    time, every row once, with the features a whole batch gives."""
    calls = onnxruntime_rows
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 11)
    feats = extract_features(b, items, options=options(engine="onnxruntime", precision="fp32", batch_size=11))
    assert sorted(calls) == [3, 8] and select.GRAPH_ROWS == 8, calls
    monkeypatch.setattr(select, "GRAPH_ROWS", 64)
    whole = extract_features(b, items, options=options(engine="onnxruntime", precision="fp32", batch_size=11))
    assert sorted(calls[2:]) == [11], calls
    np.testing.assert_allclose(feats.values, whole.values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats.values, reference(b, items), rtol=1e-3, atol=1e-4)


def test_a_recheck_waits_for_a_run_long_enough_to_pay_for_it(tmp_path: Path) -> None:
    """The check against the runner-up costs about two batches' time: a short run skips it (and stays due)."""
    remembered = select._Remembered(tmp_path, {"graph": "g"})
    remembered.put("openvino fp32", {"openvino fp32": 40.0, "onnxruntime fp32": 36.0}, runner_up="onnxruntime fp32")
    for _ in range(select.RECHECK_EVERY):
        remembered.count_use()
    batches = select.RECHECK_MIN_BATCHES
    assert not remembered.recheck_due(32 * batches - 1, 32)
    assert remembered.recheck_due(32 * batches, 32)


def test_a_batch_of_images_runs_on_torch_a_few_rows_at_a_time_and_texts_whole() -> None:
    """PyTorch's activations scale with the rows of a run too: a batch of images runs `GRAPH_ROWS` rows at a time
    (the same features as the whole batch), a batch of texts whole."""
    b = backbone("efficientnet_lite0")
    sizes: list[int] = []
    model = b.for_inference()
    original = model.forward_features

    def counted(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return original(x)

    model.forward_features = counted  # type: ignore[method-assign]
    engine = select.TorchEngine(model, "fp32", torch.device("cpu"), channels_last=True)
    batch = b.preprocess(inputs_for(b, 11))
    rows = engine(batch)
    assert sizes == [8, 3] and select.GRAPH_ROWS == 8, sizes
    sizes.clear()
    with torch.inference_mode():
        whole = original(model.to_batch_device(batch, torch.device("cpu")))
    torch.testing.assert_close(rows, whole.float(), rtol=1e-4, atol=1e-5)
    text = backbone("all-minilm-l6-v2")
    text_model = text.for_inference()
    seen: list[object] = []
    text_original = text_model.forward_features

    def text_counted(x: Any) -> torch.Tensor:
        seen.append(x)
        return text_original(x)

    text_model.forward_features = text_counted  # type: ignore[method-assign]
    text_engine = select.TorchEngine(text_model, "fp32", torch.device("cpu"), channels_last=True)
    text_engine(text.preprocess(inputs_for(text, 11)))
    assert len(seen) == 1, "texts run whole"


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_openvino_runs_for_throughput_when_a_call_extracts_many_images(graph_root: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A call of at least `THROUGHPUT_MIN_ITEMS` images opens OpenVINO for throughput and runs each batch as
    runs of `STREAM_ROWS` rows, one in flight per stream, and one of texts as runs of `GRAPH_ROWS`; a short
    call and a server (which does not say how many inputs come) run for latency. The features do not change."""
    from transferkit.engines.run import OpenVINORunner

    opened: list[bool] = []
    runs: list[list[int]] = []
    real_open, real_start_all = select.open_graph, OpenVINORunner.start_all

    def open_graph(*args: Any, throughput: bool = False, **kwargs: Any) -> Any:
        opened.append(throughput)
        return real_open(*args, throughput=throughput, **kwargs)

    def start_all(self: OpenVINORunner, inputs: Any) -> Any:
        runs.append([self.parallel_runs, *(len(next(iter(x.values()))) for x in inputs)])
        return real_start_all(self, inputs)

    monkeypatch.setattr(select, "open_graph", open_graph)
    monkeypatch.setattr(OpenVINORunner, "start_all", start_all)
    monkeypatch.setattr(select, "THROUGHPUT_MIN_ITEMS", 20)
    b = backbone("efficientnet_lite0")
    items = inputs_for(b, 20)
    opts = options(engine="openvino", precision="fp32", batch_size=20)
    many = extract_features(b, items, options=opts)
    assert opened and all(opened), opened
    streams, *sizes = runs[-1]  # the batch of 20: e.g. 2 streams, 10 runs of 2 rows (2 cores)
    rows = select.GRAPH_ROWS if streams == 1 else select.STREAM_ROWS
    assert sizes == [rows] * (20 // rows) + [20 % rows] * (20 % rows > 0), runs
    opened.clear()
    few = extract_features(b, items[:19], options=opts)
    assert opened and not any(opened), opened
    np.testing.assert_array_equal(many.values[:19], few.values)
    np.testing.assert_allclose(many.values, reference(b, items), rtol=1e-3, atol=1e-4)
    opened.clear()
    select.select_engine(b, b.for_inference, [b.load(x) for x in items], engine="openvino", precision="fp32",
                         root=graph_root)  # as the server asks: no number of inputs
    assert opened and not any(opened), opened
    opened.clear()
    runs.clear()
    text = backbone("all-minilm-l6-v2")
    texts = inputs_for(text, 20)
    text_opts = options(engine="openvino", precision="fp32", batch_size=20)
    many = extract_features(text, texts, options=text_opts)
    assert opened and all(opened), opened
    if runs[-1][0] > 1:  # several streams: runs of at most GRAPH_ROWS texts, one in flight per stream
        assert max(size for _, *sizes in runs for size in sizes) <= select.GRAPH_ROWS, runs
        assert max(len(sizes) for _, *sizes in runs) > 1, runs
    opened.clear()
    few = extract_features(text, texts[:19], options=text_opts)
    assert opened and not any(opened), opened
    np.testing.assert_allclose(many.values[:19], few.values, atol=1e-5)


def test_the_runner_up_remembered_is_never_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each rate of a race is from the last pairwise race its engine ran: on a busy machine a loser's earlier
    rate can top the list (A beat B, then A was timed slower and lost to C). The runner-up remembered is the
    fastest of the others, never the winner itself (a recheck of a choice against itself checks nothing)."""

    class Named(select.BatchEngine):
        def __init__(self, label: str) -> None:
            self.engine, self.precision = label.split()

        def __call__(self, batch: object) -> torch.Tensor:
            return torch.zeros(1, 1)

    monkeypatch.setenv("TRANSFERKIT_ENGINES", str(tmp_path / "engines"))
    remembered = select._Remembered(tmp_path, {"graph": "g"})
    plan = select._Plan(engines=["onnxruntime", "openvino", "torch"], candidates=[], remembered=remembered)
    selection = select.Selection(engine=Named("torch fp32"),
                                 rates={"torch fp32": 90.0, "onnxruntime fp32": 80.0, "openvino fp32": 85.0})
    request = types.SimpleNamespace(engine="auto")
    select._race_winner(request, plan, select._Timed(Named("openvino fp32"), 1.0), selection)  # type: ignore[arg-type]
    assert remembered.get() == "openvino fp32" and remembered.runner_up() == "torch fp32"


def test_a_run_of_texts_is_cut_to_its_own_longest_text_with_the_same_features() -> None:
    """On several streams a batch of texts runs `GRAPH_ROWS` texts at a time, each run without the padding past
    its own longest text (batches are sorted longest first: the later runs are shorter): the exported module
    gives those rows the same features as on the batch's full width."""
    text = backbone("all-minilm-l6-v2")
    parts = text.graph_parts()
    texts = [" ".join(["word"] * n) for n in (40, 31, 22, 17, 12, 11, 9, 9, 5, 3, 2, 1)]
    batch = text.collate(texts)
    widths: list[list[int]] = []

    class Streams:  # stands in for OpenVINO opened for throughput: records the runs, computes them in torch
        engine, precision, parallel_runs, release_after_run = "openvino", "fp32", 2, False
        input_names = parts.input_names

        def run_all(self, runs: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
            widths.append([int(run["attention_mask"].shape[1]) for run in runs])
            with torch.inference_mode():
                return [parts.module(*(torch.from_numpy(np.ascontiguousarray(run[n])) for n in self.input_names))
                        .numpy() for run in runs]

        def start_all(self, runs: list[dict[str, np.ndarray]]) -> Any:
            outs = self.run_all(runs)
            return lambda: outs

    out = select.GraphEngine(parts, Streams())(batch)  # type: ignore[arg-type]
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert widths == [[int(lengths[0]), int(lengths[select.GRAPH_ROWS])]], (widths, lengths)
    with torch.inference_mode():
        whole = parts.module(*(batch[n] for n in parts.input_names))
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-5)
    assert parts.trim is not None
    left = parts.trim({"attention_mask": np.array([[0, 1, 1], [0, 0, 1]]),
                       "input_ids": np.array([[0, 5, 6], [0, 0, 7]])})
    assert left["input_ids"].shape == (2, 3), "padding on the left: nothing to cut"


def test_a_remembered_choice_whose_runner_up_is_itself_is_raced_again(tmp_path: Path) -> None:
    """Records written before the runner-up had to be another engine were never checked again: not used."""
    remembered = select._Remembered(tmp_path, {"graph": "g"})
    remembered.put("onnxruntime fp32", {"onnxruntime fp32": 123.0, "torch fp32": 139.0}, runner_up="onnxruntime fp32")
    assert remembered.get() is None
    remembered.put("onnxruntime fp32", {"onnxruntime fp32": 123.0, "torch fp32": 139.0}, runner_up="torch fp32")
    assert remembered.get() == "onnxruntime fp32"


def test_auto_runs_openvino_in_its_default_precision_where_the_cpu_has_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenVINO's default on a CPU with native bf16 is bf16: `auto` races it alone there (one compiled model, not
    two of one blob); asked for by name, fp32 stays fp32, and the other engines keep both or fp32."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(select, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(select, "openvino_has_bf16", lambda: True)
    assert select._precisions("openvino", "auto", cpu) == ["bf16"]
    assert select._precisions("openvino", "fp32", cpu) == ["fp32"]
    assert select._precisions("torch", "auto", cpu) == ["fp32", "bf16"]
    assert select._precisions("onnxruntime", "auto", cpu) == ["fp32"]
    monkeypatch.setattr(select, "openvino_has_bf16", lambda: False)
    assert select._precisions("openvino", "auto", cpu) == ["fp32"]
