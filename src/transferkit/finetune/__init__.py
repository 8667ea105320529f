"""Parameter transfer on Lightning: the machinery behind `transferkit.estimators.FinetunedClassifier`.

Pieces, one file each: `config` (training settings), `model` (backbone + head, Keras flatten, the
fitted network behind the backbone contract), `freeze` (schedule callback), `callbacks` (the small
ones), `optim` (LR groups), `regularizers` (L2-SP), `peft` (LoRA, BitFit), `data` (DataModule,
augmentation, seeded sampler), `module` (LightningModule), `checkpoint` (atomic checkpoints, run
folders), `trainer` (building and running the Trainer).
"""

from transferkit.finetune.config import FinetuneConfig

__all__ = ["FinetuneConfig"]
