"""Each freeze schedule trains exactly the parameters it should, epoch by epoch."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from transferkit.finetune.freeze import trainable_groups


class Watch(pl.Callback):
    """Snapshots weights and BN statistics at each epoch start; at the end, records what moved."""

    def __init__(self) -> None:
        self.trainable: dict[int, int] = {}
        self.moved: dict[int, set[str]] = {}
        self.frozen: dict[int, set[str]] = {}
        self.expected: dict[int, int] = {}

    def on_train_epoch_start(self, trainer: pl.Trainer, module: Any) -> None:
        model = module.model
        self.before = {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}
        self.frozen[trainer.current_epoch] = {n for n, p in model.backbone.named_parameters() if not p.requires_grad}
        self.trainable[trainer.current_epoch] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        groups = module.group_params
        k = module.unfrozen
        head = sum(p.numel() for p in model.head.parameters())
        self.expected[trainer.current_epoch] = head + sum(p.numel() for g in groups[len(groups) - k :] for _, p in g)
        self.bn_modes = {n: m.training for n, m in model.backbone.named_modules() if isinstance(m, _BatchNorm)}

    def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
        after = module.model.backbone.state_dict()
        self.moved[trainer.current_epoch] = {k for k, v in after.items() if not torch.equal(v, self.before[k])}


@pytest.mark.parametrize(
    ("mode", "expected_groups"),
    [("frozen", [0, 0, 0]), ("full", ["all", "all", "all"]), ("gradual", [0, 1, 2])],
)
def test_schedule_trains_exactly_its_groups(xy: Any, tiny: Any, mode: str, expected_groups: list[Any]) -> None:
    X, y = xy
    watch = Watch()
    clf = tiny(freeze=mode, epochs=3, head_epochs=1, unfreeze_per_epoch=1).fit(X, y, callbacks=[watch])
    n_groups = len(clf.module_.group_params)
    for epoch, want in enumerate(expected_groups):
        k = n_groups if want == "all" else want
        assert trainable_groups(mode, epoch, n_groups, 1, 1) == k
        assert watch.trainable[epoch] == watch.expected[epoch]
        # nothing frozen moved: neither weights nor the BN running statistics of frozen layers
        frozen_params = watch.frozen[epoch]
        frozen_bn_stats = {
            f"{m}.{s}"
            for m in {name.rsplit(".", 1)[0] for name in frozen_params}
            for s in ("running_mean", "running_var")
        }
        assert not (watch.moved[epoch] & (frozen_params | frozen_bn_stats)), epoch
        # and what trains did move
        trained = {n for n, _ in clf.module_.model.backbone.named_parameters()} - frozen_params
        if trained:
            assert watch.moved[epoch] & trained
    assert clf.fit_report_.trainable_by_epoch == watch.trainable
    if mode == "frozen":
        assert watch.trainable[0] == sum(p.numel() for p in clf.model_.head.parameters())


def test_frozen_bn_can_train_when_asked(xy: Any, tiny: Any) -> None:
    X, y = xy
    watch = Watch()
    tiny(freeze="frozen", epochs=1, frozen_bn="train", bn_stats="train").fit(X, y, callbacks=[watch])
    assert any(k.endswith("running_mean") for k in watch.moved[0])  # stats move, weights do not
    assert not any(k.endswith(".weight") for k in watch.moved[0])


