"""The optimiser's parameter groups (`finetune.optim`): the head at its rate, each backbone group decayed layer by
layer, and LP-FT's lower start for the backbone."""

from __future__ import annotations

from typing import Any

import pytest


def test_discriminative_learning_rates(xy: Any, tiny: Any) -> None:
    X, y = xy
    clf = tiny(freeze="full", epochs=1, layer_decay=0.5, lr=0.1, scheduler="constant").fit(X, y)
    groups = clf.trainer_.optimizers[0].param_groups
    lrs = {g["name"]: g["lr"] for g in groups}
    n = len(clf.module_.group_params)
    assert lrs["head"] == pytest.approx(0.1)
    # LP-FT (the default) starts the backbone at a tenth of its rate so it begins where its probe ended
    from transferkit.finetune.optim import LPFT_BACKBONE_LR

    scale = LPFT_BACKBONE_LR if clf.module_.starts_from_probe else 1.0
    assert clf.module_.starts_from_probe  # the default
    for i in range(n):
        assert lrs[f"backbone.{i}"] == pytest.approx(scale * 0.1 * 0.5 ** (n - i))
