"""Fine-tuning with unlabelled target inputs: MCC on target batches beside labelled ones, AdaBN, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from transferkit.errors import ConfigError
from transferkit.finetune.adabn import adapt_batchnorm, bn_layers
from transferkit.finetune.mcc import minimum_class_confusion


def _shifted(paths: list[str], root: Path) -> list[str]:
    """The same images, another domain: low contrast, darker and tinted (a colour/contrast shift)."""
    out = []
    root.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(paths):
        x = np.asarray(Image.open(p), np.float32)
        y = np.clip((x - 128) * 0.45 + 90 + np.array([25, 0, -20]), 0, 255).astype(np.uint8)
        dest = root / f"t{i:03d}.png"
        Image.fromarray(y).save(dest)
        out.append(str(dest))
    return out


@pytest.fixture(scope="module")
def target(xy: Any, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _shifted(xy[0], tmp_path_factory.mktemp("target"))


# -- the MCC loss ---------------------------------------------------------------------------------
def test_mcc_against_the_formula() -> None:
    z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 2.5]])
    p = torch.softmax(z / 2.5, 1)
    h = -(p * torch.log(p + 1e-5)).sum(1)
    w = 1 + torch.exp(-h)
    w = 4 * w / w.sum()
    c = sum(w[i] * torch.outer(p[i], p[i]) for i in range(4))
    c = c / c.sum(1, keepdim=True)
    expected = (c.sum() - c.trace()) / 3
    assert minimum_class_confusion(z).item() == pytest.approx(expected.item(), rel=1e-6)
    confident = torch.eye(3) * 40.0  # three confident predictions of three different classes
    assert minimum_class_confusion(confident) < 0.01 < minimum_class_confusion(torch.zeros(3, 3))


def test_mcc_decreases_when_trained_on() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    head = nn.Linear(5, 4)
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        loss = minimum_class_confusion(head(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# -- AdaBN ----------------------------------------------------------------------------------------
def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)


def test_adabn_gives_the_target_its_own_statistics() -> None:
    torch.manual_seed(0)
    source, target = torch.randn(32, 3, 4, 4), torch.randn(32, 3, 4, 4) * 3.0 + 5.0
    bn = nn.BatchNorm2d(3)
    mean_s, var_s = _stats(source)
    bn.running_mean.copy_(mean_s)  # the running statistics are the source's: AdaBN proper
    bn.running_var.copy_(var_s)
    info = adapt_batchnorm(bn, [source[:16], source[16:]], [target[:16], target[16:]], bn)
    mean_t, var_t = _stats(target)
    assert info["layers"] == 1
    assert torch.allclose(bn.running_mean, mean_t, atol=1e-5)
    assert torch.allclose(bn.running_var, var_t, atol=1e-4)


def test_adabn_with_other_running_statistics_maps_target_onto_source() -> None:
    """Running statistics that are nobody's (the pretrained ones): the target comes out as the source did."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    for m in net:
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    net.eval()
    source = torch.randn(64, 3, 6, 6)
    target = torch.randn(64, 3, 6, 6) * 3.0 + torch.tensor([4.0, -3.0, 2.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        before_s, before_t = net(source), net(target)
    gap = [(a - b).abs().max() for a, b in zip(_stats(before_s), _stats(before_t), strict=True)]
    assert max(gap) > 1.0  # the shift is seen at the output
    adapt_batchnorm(net, [source], [target], net)
    with torch.no_grad():
        after_t = net(target)
    for got, want in zip(_stats(after_t), _stats(before_s), strict=True):
        assert torch.allclose(got, want, atol=0.05)


# -- end to end ------------------------------------------------------------------------------------
def test_finetune_with_a_target_runs_trains_mcc_and_adapts_bn(xy: Any, tiny: Any, target: list[str],
                                                                tmp_path: Path) -> None:
    X, y = xy
    adapted = tiny(epochs=3, freeze="full", run_dir=tmp_path).fit(X, y, X_target=target)
    report = adapted.fit_report_.target
    assert report["n_target"] == len(target) and report["loss"] == "mcc" and report["target_weight"] == 1.0
    mcc = report["mcc_by_epoch"]
    assert sorted(mcc) == [1, 2, 3] and all(np.isfinite(v) for v in mcc.values())
    assert mcc[3] < mcc[1]  # the confusion on target batches falls as it is trained on
    assert report["adabn"]["layers"] > 0
    # the trained network (its last checkpoint) and the kept one differ only in BatchNorm statistics
    trained = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    kept = adapted.model_.state_dict()
    assert all(torch.equal(v, trained[f"model.{k}"]) for k, v in kept.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    name, _ = bn_layers(adapted.model_)[0]
    assert not torch.allclose(kept[f"{name}.running_mean"], trained[f"model.{name}.running_mean"])
    assert len(adapted.predict(target)) == len(target)
    assert adapted.summary()["target"]["n_target"] == len(target)
    # the shift diagnostic: the pretrained network's features, then the adapted network's, same inputs
    shift = report["shift"]
    assert shift["n_source"] == len(X) and shift["n_target"] == len(target)
    assert shift["domain_accuracy"] > 0.5 and shift["domain_accuracy_aligned"] is not None
    assert shift["alignment"] == "fine-tuning with the target + AdaBN" and len(shift["map"]["panels"]) == 2
    assert adapted.summary()["adaptation"]["shift"]["verdict"] == shift["verdict"]


def test_target_batches_change_training(xy: Any, tiny: Any, target: list[str]) -> None:
    X, y = xy
    with_mcc = tiny(epochs=1, adabn=False).fit(X, y, X_target=target)
    without = tiny(epochs=1, adabn=False, target_weight=0.0).fit(X, y, X_target=target)
    head_a, head_b = with_mcc.model_.head.state_dict(), without.model_.head.state_dict()
    assert any(not torch.equal(head_a[k], head_b[k]) for k in head_a)
    assert without.fit_report_.target["loss"] is None and without.fit_report_.target["mcc_by_epoch"] == {}


class _Killed(RuntimeError):
    pass


class _KillAt(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise _Killed("simulated crash")


def test_kill_and_resume_with_a_target(xy: Any, tiny: Any, target: list[str], tmp_path: Path) -> None:
    X, y = xy
    settings = {"epochs": 2, "augment": True, "adabn": False}
    tiny(**settings, run_dir=tmp_path / "a").fit(X, y, X_target=target)
    with pytest.raises(_Killed):
        tiny(**settings, run_dir=tmp_path / "b").fit(X, y, X_target=target, callbacks=[_KillAt(1)])
    with pytest.raises(ConfigError, match="target"):
        tiny(**settings, run_dir=tmp_path / "b", resume=True).fit(X, y, X_target=target[:-3])
    with pytest.raises(ConfigError, match="gives none"):
        tiny(**settings, run_dir=tmp_path / "a", resume=True).fit(X, y)
    tiny(**settings, run_dir=tmp_path / "b", resume=True).fit(X, y, X_target=target)
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_an_empty_target_is_refused(xy: Any, tiny: Any) -> None:
    with pytest.raises(ConfigError, match="no target inputs"):
        tiny(epochs=1).fit(*xy, X_target=[])


def test_a_peft_bundle_keeps_the_adabn_statistics(xy: Any, tiny: Any, target: list[str], tmp_path: Path) -> None:
    """PEFT bundles store only what trained; AdaBN's statistics are kept too, or loading would undo them."""
    from transferkit import load

    X, y = xy
    clf = tiny(epochs=1, peft="bitfit", target_weight=0.0).fit(X, y, X_target=target)
    clf.save(tmp_path / "bundle")
    loaded = load(tmp_path / "bundle", progress=False)
    name, layer = bn_layers(clf.model_)[-1]
    assert torch.equal(loaded.model_.state_dict()[f"{name}.running_mean"], layer.running_mean)
