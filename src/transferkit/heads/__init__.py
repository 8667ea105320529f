"""What is trained on top of a backbone's features: head specs, their training, and fusion of columns.

- `spec`: the head spec language (`linear`, `mlp:512`, `dense:1024:relu, dropout:0.5, dense:N`) and
  the modules it builds;
- `train`: fitting a head on cached features (`train_probe`: the one probe trainer, linear with C
  chosen on validation or a torch head; one minibatch loop for every torch head);
- `fusion`: learned per-column gates over the blocks of a multimodal table.
"""

from transferkit.heads.head_spec import HeadSpec, Layer, Standardize, build_head, parse_head
from transferkit.heads.train import (
    FittedProbe,
    HeadChoice,
    HeadTraining,
    Rows,
    chosen_val_accuracy,
    class_weights,
    fit_head,
    row_moments,
    train_on_features,
    train_probe,
)

__all__ = [
    "FittedProbe",
    "HeadChoice",
    "HeadSpec",
    "HeadTraining",
    "Layer",
    "Rows",
    "Standardize",
    "build_head",
    "chosen_val_accuracy",
    "class_weights",
    "fit_head",
    "parse_head",
    "row_moments",
    "train_on_features",
    "train_probe",
]
