"""What an engine holds in memory: an onnxruntime session plans no memory pattern beside its arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from transferkit.engines.onnx_graph import export_onnx
from transferkit.engines.run import is_installed, open_graph


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="needs onnxruntime")
def test_onnxruntime_session_keeps_no_memory_pattern(tmp_path: Path) -> None:
    """With the pattern a session held a second block the size of a batch's intermediate tensors
    (886 MB against 552 MB after batches of 32 EfficientNet-Lite0 images)."""
    path = export_onnx(torch.nn.Linear(4, 3), {"input": torch.randn(2, 4)}, tmp_path / "model.onnx",
                       dynamic_axes={"input": {0: "batch"}})
    runner = open_graph(path, "onnxruntime", threads=1)
    assert runner.session.get_session_options().enable_mem_pattern is False  # type: ignore[attr-defined]
    assert runner.session.get_session_options().enable_cpu_mem_arena is True  # type: ignore[attr-defined]
    x = np.ones((5, 4), np.float32)
    assert runner({"input": x}).shape == (5, 3)


@pytest.mark.slow
@pytest.mark.skipif(not (is_installed("onnxruntime") and is_installed("openvino")), reason="needs both graph engines")
def test_engines_taking_turns_in_a_race_keep_no_buffers_between_their_runs(graph_root: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each engine of a race gives a batch's buffers back after its run, so two engines' buffers are
    never held at once; the one chosen keeps them again for the batches that follow."""
    from tests.engines.conftest import inputs_for, options

    from transferkit.backbones import create_backbone
    from transferkit.engines import select
    from transferkit.features import extract_features

    monkeypatch.setattr(select, "AUTO_MIN_ITEMS", 0)
    monkeypatch.setattr(select._Remembered, "get", lambda self: None)  # race, whatever was remembered
    during_race: list[tuple[str, bool]] = []
    chosen: list[select.BatchEngine] = []
    real_run, real_winner = select._Timed.run, select._race_winner

    def run(self: select._Timed, batch: object) -> None:
        if isinstance(self.engine, select.GraphEngine):
            during_race.append((self.engine.label, self.engine.runner.release_after_run))
        real_run(self, batch)

    def race_winner(*args: object) -> select.Selection:
        selection = real_winner(*args)  # type: ignore[arg-type]
        chosen.append(selection.engine)
        return selection

    monkeypatch.setattr(select._Timed, "run", run)
    monkeypatch.setattr(select, "_race_winner", race_winner)
    b = create_backbone("resnet10t", weights="random")  # small: the race is what is looked at
    feats = extract_features(b, inputs_for(b, 12), options=options(precision="fp32"))
    assert {label for label, _ in during_race} >= {"onnxruntime fp32", "openvino fp32"}
    assert all(released for _, released in during_race), during_race
    engine = chosen[0]
    assert feats.engine == engine.engine
    if isinstance(engine, select.GraphEngine):
        assert engine.runner.release_after_run is False


def test_each_run_of_a_race_gives_the_freed_heap_back_before_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two engines take turns on the first batch; after each run (warm-up or timed) the heap's free pages go
    back to the OS, so what one engine's run freed does not stay in the process under the other's run
    (ONNX Runtime's MiniLM session grew ~16 MB a run beside OpenVINO without it)."""
    from transferkit.engines import select

    events: list[str] = []

    class Fake(select.BatchEngine):
        def __init__(self, name: str) -> None:
            self.engine, self.precision = name, "fp32"

        def __call__(self, batch: object) -> torch.Tensor:
            events.append(f"run {self.engine}")
            return torch.zeros(4, 2)

    monkeypatch.setattr(select, "trim_heap", lambda: events.append("trim"))
    rates: dict[str, float] = {}
    best = select._race(None, select._Timed(Fake("a"), 1.0), object(), rates)
    best = select._race(best, select._Timed(Fake("b"), 1.0), object(), rates)
    runs = [e for e in events if e != "trim"]
    assert len(runs) == 2 * (1 + select.TIMED_ROUNDS) + select.TIMED_ROUNDS
    assert events == [e for run in runs for e in (run, "trim")]
    assert set(rates) == {"a fp32", "b fp32"}


def test_an_engine_is_chosen_on_a_heap_given_back_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing the engine of an extraction call starts by giving the heap's free pages back, before
    PyTorch's reference or any engine is built: what the caller freed (a fit's head, the last call's
    engine) would otherwise stay under them (a text fit's test split: 1.59 → 1.50 GB at its peak)."""
    from tests.engines.conftest import backbone, inputs_for, options

    from transferkit.engines import select
    from transferkit.features import extract_features

    events: list[str] = []
    real = select.TorchEngine.__call__

    def run(self: select.TorchEngine, batch: object) -> torch.Tensor:
        events.append("torch")
        return real(self, batch)

    monkeypatch.setattr(select, "trim_heap", lambda: events.append("trim"))
    monkeypatch.setattr(select.TorchEngine, "__call__", run)
    b = backbone("all-minilm-l6-v2")
    extract_features(b, inputs_for(b, 3), options=options(engine="torch", precision="fp32"))
    assert events[:2] == ["trim", "torch"], events
