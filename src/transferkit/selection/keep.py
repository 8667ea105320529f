"""Keep the better on validation: the probe `--strategy auto` weighs fine-tuning against, or the
fine-tuned network. A tie keeps the probe (seconds to train, and no worse)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transferkit.data.dataset import LabelledData
    from transferkit.estimators.transfer_estimator import TransferEstimator


def keep_better(probe: TransferEstimator, tuned: TransferEstimator, valid: LabelledData,
                record: dict[str, Any]) -> TransferEstimator:
    """The better on `valid` of two fitted estimators, the comparison written into `record`. The probe's
    figure is from before its head was refitted on train + validation (scored on data it was fitted to,
    it would read high); a head that records none (an MLP: validation only stopped it) is scored."""
    from transferkit.heads import chosen_val_accuracy

    probe_val = chosen_val_accuracy(probe.fit_report_.head_choice)
    if probe_val is None:
        probe_val = probe.score(valid.items, valid.labels)
    tuned_val = float(tuned.score(valid.items, valid.labels))
    kept = "finetuned" if tuned_val > float(probe_val) else "probe"
    record["compared"] = {"kept": kept, "val_accuracy_probe": float(probe_val), "val_accuracy_finetuned": tuned_val,
                          "probe_backbone": probe.summary().get("backbone"), "n_val": len(valid)}
    # fine-tuning epoch by epoch, kept with the decision: the report draws it whichever was kept
    record["timeline"] = list(getattr(tuned.fit_report_, "timeline", []))
    return tuned if kept == "finetuned" else probe
