"""Choosing without target labels: DEV (importance-weighted validation with a control variate), and
the probe's training views decided on validation (or by DEV with a target)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from transferkit.adapt.dev import dev_risk, dev_score, importance_weights
from transferkit.estimators.probe import TransferClassifier


def test_dev_with_equal_weights_is_the_plain_risk() -> None:
    losses = np.random.default_rng(0).random(50)
    assert abs(dev_risk(losses, np.ones(50)) - losses.mean()) < 1e-12


def test_dev_estimates_the_target_risk_under_covariate_shift() -> None:
    """A model wrong wherever x0 > 1: rare in the source (16%), common in the target (69%)."""
    rng = np.random.default_rng(0)
    source = rng.normal(size=(3000, 2))
    target = rng.normal(size=(3000, 2)) + np.array([1.5, 0.0])
    val = rng.normal(size=(1500, 2))
    w = importance_weights(source, target, val, seed=0)
    losses = (val[:, 0] > 1).astype(float)
    true_target_risk = float((target[:, 0] > 1).mean())
    estimate = dev_risk(losses, w)
    assert abs(estimate - true_target_risk) < 0.1, (estimate, true_target_risk)
    assert abs(losses.mean() - true_target_risk) > 0.4  # what plain validation would have said
    # the control variate: never worse than the plain importance-weighted mean here
    assert abs(estimate - true_target_risk) <= abs(float(np.mean(w * losses)) - true_target_risk) + 1e-9


def test_dev_score_reports_accuracy_and_effective_size() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    score = dev_score(proba, np.array([0, 1, 1, 1]), np.ones(4))
    assert abs(score.accuracy - 0.75) < 1e-12 and abs(score.effective_n - 4) < 1e-9


def _probe_with_views(seed: int, helpful: bool) -> tuple[TransferClassifier, dict]:
    """The state `_choose_views` sees: 60 clean training rows, 120 view rows, 60 validation rows. Views
    that carry the class signal help (the training rows alone are few and noisy); views with their
    labels shuffled mislead."""
    rng = np.random.default_rng(seed)
    d, k = 20, 3
    centres = rng.normal(size=(k, d)) * 1.2

    def rows(n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % k
        return centres[y] + rng.normal(size=(n, d)) * noise, y

    x_tr, y_tr = rows(12, 2.0)
    x_va, y_va = rows(90, 2.0)
    x_vw, y_vw = rows(240, 2.0)
    if not helpful:
        y_vw = rng.permutation(y_vw)
    values = np.concatenate([x_tr, x_va, x_vw]).astype(np.float32)
    y_all = np.concatenate([y_tr, y_va, y_vw])
    plain = np.arange(12)
    va = np.arange(12, 102)
    views = np.concatenate([plain, np.arange(102, 342)])
    clf = TransferClassifier(augment=2, seed=seed)
    clf.backbone_ = SimpleNamespace(feature_blocks=lambda: None)  # type: ignore[assignment]
    clf.classes_ = np.array(["a", "b", "c"])
    return clf, {"values": values, "y_all": y_all, "plain_idx": plain, "views_idx": views, "va_idx": va}


def _choose(helpful: bool, target: np.ndarray | None = None) -> dict:
    from transferkit.heads import parse_head, train_probe

    clf, s = _probe_with_views(0, helpful)
    spec = parse_head("linear")
    probe = train_probe(spec, s["values"][s["views_idx"]], s["y_all"][s["views_idx"]], s["values"][s["va_idx"]],
                        s["y_all"][s["va_idx"]], 3, class_weight=None, seed=0)
    _, kept, record = clf._choose_views(spec, probe, s["values"], s["y_all"], s["plain_idx"], s["views_idx"],
                                        s["va_idx"], target)
    assert (len(kept) > len(s["plain_idx"])) == (record["used"] == 2)
    return record


def test_misleading_views_are_dropped_and_helpful_ones_kept() -> None:
    dropped, kept = _choose(helpful=False), _choose(helpful=True)
    assert dropped["used"] == 0 and "without" in dropped["why"]
    assert kept["used"] == 2
    assert dropped["criterion"].startswith("validation accuracy")
    assert "dev_seconds" not in kept and "dev_seconds" not in dropped  # no target: nothing of DEV's to time


def test_with_a_target_views_are_chosen_by_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    """DEV scores each probe's own held-out validation probabilities (its C grid's): nothing is refitted."""
    import transferkit.adapt.dev

    def refit(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("DEV refitted a probe the C grid had already fitted")

    monkeypatch.setattr(transferkit.adapt.dev, "heldout_proba", refit)
    target = np.random.default_rng(5).normal(size=(80, 20)) + 0.3
    record = _choose(helpful=False, target=target)
    assert record["criterion"].startswith("DEV") and record["used"] == 0
    assert set(record["dev"]) == {"with_views", "without"}
    assert isinstance(record["dev_seconds"], float) and record["dev_seconds"] >= 0  # adaptation's cost, counted


def test_compare_by_dev_weighs_models_on_one_set_of_weights() -> None:
    from transferkit.adapt.dev import compare_by_dev

    rng = np.random.default_rng(1)
    train, val = rng.normal(size=(400, 3)), rng.normal(size=(300, 3))
    target = rng.normal(size=(400, 3)) + np.array([1.5, 0, 0])
    truth = np.zeros(300, int)
    right_far = np.where(val[:, :1] > 1, [[0.9, 0.1]], [[0.4, 0.6]])  # right only where the target lives
    right_near = np.where(val[:, :1] > 1, [[0.4, 0.6]], [[0.9, 0.1]])
    scores = compare_by_dev(train, truth, val, truth, target, {"far": right_far, "near": right_near})
    assert scores["near"].plain_risk < scores["far"].plain_risk  # in-domain validation prefers "near"
    assert scores["far"].accuracy > scores["near"].accuracy  # DEV, seeing the target, prefers "far"


def test_strategy_auto_with_a_target_keeps_the_model_dev_prefers(monkeypatch: pytest.MonkeyPatch) -> None:
    """`fit --strategy auto --adapt-to`: the probe reads better on in-domain validation, the fine-tuned
    network is right where the target lives — DEV keeps the network (validation alone kept the probe)."""
    from transferkit.data.dataset import LabelledData
    from transferkit.features import Features
    from transferkit.selection.keep import keep_better

    rng = np.random.default_rng(3)
    x = {"train": rng.normal(size=(300, 4)), "val": rng.normal(size=(200, 4)),
         "target": rng.normal(size=(300, 4)) + np.array([1.5, 0, 0, 0])}
    # the label: the sign of feature 1, flipped where feature 0 > 1 — where the target mostly lives, and
    # where a linear probe (fitted mostly on the rest) is wrong
    y = {k: ((v[:, 1] > 0) ^ (v[:, 0] > 1)).astype(int) for k, v in x.items()}
    names = {k: [f"{k}{i}" for i in range(len(v))] for k, v in x.items()}
    lookup = {n: (k, i) for k, ns in names.items() for i, n in enumerate(ns)}

    def features(items: list[str]) -> Features:
        return Features(values=np.stack([x[lookup[n][0]][lookup[n][1]] for n in items]).astype(np.float32),
                        ok=np.ones(len(items), bool))

    classes = np.array(["neg", "pos"])
    probe = SimpleNamespace(kind="probe", classes_=classes, features=features,
                            fit_report_=SimpleNamespace(head_choice={"C": 1.0, "val_accuracy_by_C": {"1.0": 0.99}}),
                            summary=lambda: {"backbone": "fake"})
    far = x["val"][:, 0] > 1  # where the target lives: the network is right there, wrong elsewhere half the time

    def tuned_proba(items: list[str]) -> np.ndarray:
        rows = np.array([lookup[n][1] for n in items])
        right = far[rows] | (rows % 2 == 0)
        label = np.where(right, y["val"][rows], 1 - y["val"][rows])
        return np.eye(2)[label] * 0.9 + 0.05

    tuned = SimpleNamespace(kind="finetuned", classes_=classes, predict_proba=tuned_proba,
                            score=lambda items, labels: float(np.mean(tuned_proba(items).argmax(1) ==
                                                                      np.searchsorted(classes, labels))),
                            fit_report_=SimpleNamespace(timeline=[]))
    data = {k: LabelledData(names[k], [str(c) for c in classes[y[k]]], modality="text", source=k)
            for k in ("train", "val")}
    record: dict = {}
    kept = keep_better(probe, tuned, data["val"], record, train=data["train"], target=names["target"])
    assert record["compared"]["val_accuracy_probe"] > record["compared"]["val_accuracy_finetuned"]
    assert kept is tuned and record["compared"]["criterion"].startswith("DEV")
    dev = record["compared"]["dev"]
    assert dev["finetuned"]["dev_accuracy"] > dev["probe"]["dev_accuracy"]

    # a probe that kept its C grid's held-out validation probabilities (a fitted TransferClassifier): DEV
    # scores those, refitting nothing; the same probabilities, the same figures
    import transferkit.adapt.dev
    from transferkit.adapt.dev import heldout_proba

    ty = np.searchsorted(classes, data["train"].labels)
    probe.heldout_val_proba_ = heldout_proba(x["train"].astype(np.float32).astype(np.float64), ty,
                                             x["val"].astype(np.float32).astype(np.float64), 2, c=1.0)

    def refit(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("DEV refitted the probe")

    monkeypatch.setattr(transferkit.adapt.dev, "heldout_proba", refit)
    again: dict = {}
    assert keep_better(probe, tuned, data["val"], again, train=data["train"], target=names["target"]) is tuned
    assert again["compared"]["dev"] == dev
