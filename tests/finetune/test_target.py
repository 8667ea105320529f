"""Fine-tuning with unlabelled target inputs: MCC on target batches beside labelled ones, AdaBN, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.errors import ConfigError
from transferkit.finetune.adabn import bn_layers


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


# -- end to end ------------------------------------------------------------------------------------
def test_finetune_with_a_target_runs_trains_mcc_and_adapts_bn(xy: Any, tiny: Any, target: list[str],
                                                                tmp_path: Path) -> None:
    X, y = xy
    adapted = tiny(epochs=3, freeze="full", run_dir=tmp_path, adabn=True).fit(X, y, X_target=target)
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
    with_mcc = tiny(epochs=1).fit(X, y, X_target=target)  # AdaBN is off unless asked for
    without = tiny(epochs=1, adabn=False, target_weight=0.0).fit(X, y, X_target=target)
    assert "adabn" not in with_mcc.fit_report_.target
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
    clf = tiny(epochs=1, peft="bitfit", target_weight=0.0, adabn=True).fit(X, y, X_target=target)
    clf.save(tmp_path / "bundle")
    loaded = load(tmp_path / "bundle", progress=False)
    name, layer = bn_layers(clf.model_)[-1]
    assert torch.equal(loaded.model_.state_dict()[f"{name}.running_mean"], layer.running_mean)
