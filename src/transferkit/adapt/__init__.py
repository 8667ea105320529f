"""Domain adaptation for probes: align the features of where a model is used to where it was trained.

- `align`: the alignment maths on feature arrays — per-domain standardisation, CORAL with
  Ledoit–Wolf shrinkage, `auto` (James–Stein-shrunk standardisation), test-time batch standardisation — and the fitted
  affine map as a torch module (`AlignModule`), saved in bundles and exported inside the graph;
- `latent`: the target's latent domains (k-means), each aligned on its own — `auto`'s second candidate;
- `stored`: the alignment a bundle's tensors hold, whichever kind;
- `shift_test`: whether the target differs at all (KS on principal components, Bonferroni), `auto`'s first question;
- `selftrain`: class-balanced self-training on confident target pseudo-labels (an option);
- `mcc`: the linear head fine-tuned with Minimum Class Confusion on the aligned target (an option);
- `target`: reading TARGET, the user's unlabelled inputs of the target domain, in any layout.

Below the estimators (which use it) and above features and data (which it reads with).
"""

from transferkit.adapt.align import (
    MAX_CORAL_DIM,
    METHODS,
    MIN_BATCH_INPUTS,
    MIN_TARGET_INPUTS,
    Alignment,
    AlignModule,
    BlockAlignment,
    BlockAlignModule,
    auto_outcome,
    batch_standardizer,
    fit_alignment,
    fit_coral,
    fit_shrunk_standardize,
    fit_standardize,
    resolve_method,
    shrunk_covariance,
)
from transferkit.adapt.selftrain import SelfTrainingReport, confident_pseudo_labels, self_train
from transferkit.adapt.stored import alignment_from_tensors
from transferkit.adapt.target import TargetInputs, read_target

__all__ = [
    "MAX_CORAL_DIM",
    "METHODS",
    "MIN_BATCH_INPUTS",
    "MIN_TARGET_INPUTS",
    "AlignModule",
    "Alignment",
    "BlockAlignModule",
    "BlockAlignment",
    "SelfTrainingReport",
    "TargetInputs",
    "alignment_from_tensors",
    "auto_outcome",
    "batch_standardizer",
    "confident_pseudo_labels",
    "fit_alignment",
    "fit_coral",
    "fit_shrunk_standardize",
    "fit_standardize",
    "read_target",
    "resolve_method",
    "self_train",
    "shrunk_covariance",
]
