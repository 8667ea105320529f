"""Keep the better on validation: the probe `--strategy auto` weighs fine-tuning against, or the
fine-tuned network. A tie keeps the probe (seconds to train, and no worse). With a target (`--adapt-to`),
the better by DEV's estimate of the target accuracy instead (You et al., ICML 2019; `adapt.dev`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from transferkit.adapt.dev import DevScore
    from transferkit.data.dataset import LabelledData
    from transferkit.estimators.transfer_estimator import TransferEstimator


class KeepRecord(TypedDict, total=False):
    """What `keep_better` writes into the strategy decision's record (`commands.fit.StrategyRecord`): the
    comparison, and fine-tuning's timeline ([epoch, seconds, validation accuracy]) whichever was kept."""

    compared: Comparison
    timeline: list[list[float | None]]


class Comparison(TypedDict, total=False):
    """`keep_better`'s decision, kept in the strategy decision's record as `compared`: which was kept, both
    validation accuracies, the probe's backbone, on how many inputs, the criterion, and DEV's figures."""

    kept: str
    val_accuracy_probe: float
    val_accuracy_finetuned: float
    probe_backbone: str | None
    n_val: int
    criterion: str
    dev: dict[str, dict[str, float]]


def keep_better(probe: TransferEstimator, tuned: TransferEstimator, valid: LabelledData,
                record: KeepRecord, *, train: LabelledData | None = None,
                target: list[object] | None = None) -> TransferEstimator:
    """The better on `valid` of two fitted estimators, the comparison written into `record`. The probe's
    figure is from before its head was refitted on train + validation (scored on data it was fitted to,
    it would read high); a head that records none (an MLP: validation only stopped it) is scored. Given
    the `train` split and unlabelled `target` inputs, DEV decides (`_dev_compare`)."""
    from transferkit.heads import chosen_val_accuracy

    probe_val = chosen_val_accuracy(probe.fit_report_.head_choice)
    if probe_val is None:
        probe_val = probe.score(valid.items, valid.labels)
    tuned_val = float(tuned.score(valid.items, valid.labels))
    kept = "finetuned" if tuned_val > float(probe_val) else "probe"
    compared: Comparison = {"kept": kept, "val_accuracy_probe": float(probe_val), "val_accuracy_finetuned": tuned_val,
                            "probe_backbone": probe.summary().get("backbone"), "n_val": len(valid),
                            "criterion": "validation accuracy"}
    record["compared"] = compared
    if target is not None and train is not None and probe.kind == "probe":
        dev = _dev_compare(probe, tuned, train, valid, target)
        kept = "finetuned" if dev["finetuned"].accuracy > dev["probe"].accuracy else "probe"
        compared["kept"] = kept
        compared["criterion"] = ("DEV (importance-weighted validation, control variate; You et al. 2019), weights "
                                 "from the probe's frozen features")
        compared["dev"] = {k: v.to_dict() for k, v in dev.items()}
    # fine-tuning epoch by epoch, kept with the decision: the report draws it whichever was kept
    record["timeline"] = list(getattr(tuned.fit_report_, "timeline", []))
    return tuned if kept == "finetuned" else probe


def _dev_compare(probe: TransferEstimator, tuned: TransferEstimator, train: LabelledData, valid: LabelledData,
                 target: list[object]) -> dict[str, DevScore]:
    """DEV of the probe and the fine-tuned network on one set of importance weights, from the probe's frozen
    (cached) features. The probe's validation probabilities are those its C grid kept (`heldout_val_proba_`:
    the probe at the C it chose, fitted on its training rows only; its own head saw validation), an
    unreadable validation input given equal probabilities; a probe that kept none (a torch head's
    grid-free training) is refitted here, a linear head on the training rows at its C."""
    import numpy as np

    from transferkit.adapt.dev import compare_by_dev, heldout_proba
    from transferkit.selection.backbone import target_sample

    feats = {k: probe.features(items) for k, items in
             (("train", train.items), ("val", valid.items), ("target", target_sample(target, 0)))}
    index = {c: i for i, c in enumerate(probe.classes_)}
    ty = np.array([index.get(str(v), -1) for v, ok in zip(train.labels, feats["train"].ok, strict=True) if ok])
    vy = np.array([index.get(str(v), 0) for v in valid.labels])
    val_x = np.zeros((len(valid), feats["train"].values.shape[1]))
    val_x[feats["val"].ok] = feats["val"].values
    chosen_c = probe.fit_report_.head_choice.get("C")
    c = 1.0 if chosen_c is None else float(chosen_c)
    keep = ty >= 0
    kept: np.ndarray | None = getattr(probe, "heldout_val_proba_", None)
    if kept is not None and len(kept) == int(feats["val"].ok.sum()):  # the probe's validation rows: the readable
        probe_p = np.full((len(valid), len(index)), 1.0 / len(index))
        probe_p[feats["val"].ok] = kept
    else:
        probe_p = heldout_proba(feats["train"].values[keep].astype(np.float64), ty[keep], val_x, len(index), c=c)
    tuned_p = np.asarray(tuned.predict_proba(valid.items), np.float64)
    order = [list(tuned.classes_).index(cl) for cl in probe.classes_]
    return compare_by_dev(feats["train"].values[keep], ty[keep], val_x, vy, feats["target"].values,
                          {"probe": probe_p, "finetuned": tuned_p[:, order]})
