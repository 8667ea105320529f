"""Parameter transfer: fine-tuning a backbone + head on Lightning.

    from transferkit.finetune import FinetuneConfig, FinetunedClassifier, load_finetuned
    clf = FinetunedClassifier(FinetuneConfig(backbone="efficientnet_lite0", freeze="gradual", epochs=5))
    clf.fit(paths, labels, X_val=val_paths, y_val=val_labels, run_dir="runs/ft").save("runs/ft")

Pieces, one file each: `config` (settings, YAML), `model` (backbone + head, Keras flatten),
`freeze` (schedule callback), `optim` (LR groups), `regularizers` (L2-SP), `peft` (LoRA, BitFit),
`data` (DataModule, augmentation, seeded sampler), `module` (LightningModule), `checkpoint`
(atomic checkpoints, run folders), `engine` (Trainer + estimator + bundle), `workflow` (CLI flow).
"""

from __future__ import annotations

from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.engine import FinetunedClassifier, load_finetuned

__all__ = ["FinetuneConfig", "FinetunedClassifier", "load_finetuned"]
