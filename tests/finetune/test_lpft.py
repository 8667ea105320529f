"""LP-FT: the new head is fitted on the frozen features first, so fine-tuning starts at the probe."""

from __future__ import annotations

from typing import Any

from transferkit import TransferClassifier


def test_fine_tuning_starts_from_the_probe(xy: Any, tiny: Any) -> None:
    X, y = xy
    # a learning rate too small to move anything: what is left is where training started
    still = {"epochs": 1, "lr": 1e-9, "input_size": 32, "augment": False}
    from_probe = tiny(head_init="probe", **still).fit(X, y)
    from_random = tiny(head_init="random", **still).fit(X, y)
    assert from_probe.fit_report_.head_choice["head_init"] == "probe (LP-FT)"
    probe = TransferClassifier("test_efficientnet", weights="random", precision="fp32", progress=False,
                               cache_dir=False).fit(X, y)
    assert probe.score(X, y) >= 0.9  # the colours separate even on random-init features
    assert from_probe.score(X, y) >= probe.score(X, y) - 0.1
    assert from_random.score(X, y) < from_probe.score(X, y) - 0.2
