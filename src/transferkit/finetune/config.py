"""Fine-tuning settings: one typed dataclass of *how* a backbone + head is trained, validated once.

What is trained (backbone, weights, head, seed, batch size, precision) are the parameters of
`transferkit.estimators.FinetunedClassifier`; this dataclass is its `training` parameter, and the
`fit` options of that name (CLI flags and `--config` YAML keys) fill it (`transferkit.options`).
Fields that a `--resume` may change carry `resumable` in their metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TypedDict, cast

from transferkit.jsontypes import JSONObject
from transferkit.params import (
    FLAG,
    FRACTION,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    NONE,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    UNIT,
    OneOf,
    Satisfies,
    check_declared,
    declare,
    declared,
)

FREEZE_MODES = ("frozen", "full", "gradual")
PEFT_METHODS = ("lora", "bitfit")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "constant")
CLASS_BALANCE = ("auto", "weights", "sampler", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")

_LR = Satisfies(lambda v: v == "auto" or (isinstance(v, int | float) and not isinstance(v, bool) and v > 0),
                "a positive number or 'auto'")
_DEVICES = Satisfies(lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                     "a positive number or 'auto'")
_NAMES = Satisfies(lambda v: isinstance(v, tuple | list) and all(isinstance(n, str) and n for n in v),
                   "a list of module names")


class FinetuneConfigRecord(TypedDict):
    """`FinetuneConfig.to_dict()`: every field under its own name (`lora_targets` as a list), as bundles
    (`finetune.config`) and `run.json` (`params.training`) keep it. `from_dict` reads it back, and older
    records with keys of their own."""

    freeze: str
    head_init: str
    keep: str
    head_epochs: int
    unfreeze_per_epoch: int
    epochs: int
    lr: float | str
    layer_decay: float
    optimizer: str
    weight_decay: float
    scheduler: str
    warmup_epochs: float
    label_smoothing: float
    class_balance: str
    l2sp_alpha: float
    l2sp_beta: float
    augment: bool
    aug_scale_min: float
    aug_hflip: float
    aug_color_jitter: float
    peft: str | None
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: list[str] | None
    frozen_bn: str
    bn_stats: str
    channels_last: bool
    input_size: int | None
    devices: int | str
    accelerator: str
    num_workers: int | None
    target_weight: float
    mcc_temperature: float
    adabn: bool
    monitor: str
    patience: int
    lr_find_steps: int


@dataclass(frozen=True)
class FinetuneConfig:
    """How a backbone + head is fine-tuned (saved in the run folder and the bundle).

    Every field is declared once (`transferkit.params.declare`): default, help, rule, flag, resumable.
    """

    #: Default full with layer-wise LR decay 0.7 (the BEiT/ConvNeXt recipe): on the digits figure
    #: (benchmarks/digits_finetune.py, 10 images per class) it scored 88.3% against 77.9% for
    #: gradual and 81.0% for the frozen probe.
    freeze: str = declare("full", "finetune: frozen (head only), full, or gradual (head first, then unfreeze from the "
                          "top). Default full, with layer-wise LR decay.", "--freeze", rules=OneOf(FREEZE_MODES))
    head_init: str = declare("probe", "probe: fit the new head on the frozen backbone's features first, then fine-tune "
                             "from there (LP-FT, Kumar et al., ICLR 2022: a short fine-tune then starts at the probe, "
                             "and distorts the pretrained features less under a distribution shift); random: the "
                             "head starts at random.", rules=OneOf(("probe", "random")))
    keep: str = declare("finetuned", "finetuned: keep the fine-tuned network; better: with a probe start and a "
                        "validation split, keep the probe LP-FT started from instead when it scores higher on "
                        "validation (what `--strategy auto` asks for: fine-tuning must earn its place against the "
                        "probe).", rules=OneOf(("finetuned", "better")))
    head_epochs: int = declare(1, "freeze gradual: epochs that train the head alone first.", rules=NON_NEGATIVE_INT)
    unfreeze_per_epoch: int = declare(1, "freeze gradual: backbone groups unfrozen each epoch after, from the top "
                                      "(ULMFiT / fastai).", rules=POSITIVE_INT)
    epochs: int = declare(10, "finetune: training epochs (default 10).", "--epochs", rules=POSITIVE_INT,
                          resumable=True)
    lr: float | str = declare(1e-3, "finetune: learning rate of the head (and of PEFT parameters), or 'auto' (LR "
                              "finder). Default 1e-3.", "--lr", rules=_LR)
    layer_decay: float = declare(0.7, "Discriminative LRs: backbone group i of G (input → output) gets "
                                 "lr · layer_decay^(G − i).", rules=UNIT)
    optimizer: str = declare("adamw", "adamw, adam or sgd.", rules=OneOf(OPTIMIZERS))
    weight_decay: float = declare(0.01, "Weight decay.", rules=NON_NEGATIVE)
    scheduler: str = declare("cosine", "cosine or constant.", rules=OneOf(SCHEDULERS))
    warmup_epochs: float = declare(0.0, "Epochs of linear LR warm-up.", rules=NON_NEGATIVE)
    label_smoothing: float = declare(0.0, "Label smoothing of the loss.", rules=FRACTION)
    class_balance: str = declare("auto", "auto: class-weighted loss when the largest class is ≥ 3x the smallest; "
                                 "weights; sampler; none.", rules=OneOf(CLASS_BALANCE))
    l2sp_alpha: float = declare(0.0, "L2-SP (Li et al. 2018): α/2·‖w_S − w_S⁰‖² on the backbone.", rules=NON_NEGATIVE)
    l2sp_beta: float = declare(0.0, "L2-SP: β/2·‖w_head‖² on the head.", rules=NON_NEGATIVE)
    augment: bool = declare(True, "timm training augmentation (train split only): random-resized-crop scale, flip, "
                            "colour jitter. Its option name is batch_augment.", rules=FLAG)
    aug_scale_min: float = declare(0.25, "Smallest random-resized-crop scale.", rules=UNIT)
    aug_hflip: float = declare(0.5, "Probability of a horizontal flip.", rules=PROBABILITY)
    aug_color_jitter: float = declare(0.4, "Colour jitter strength.", rules=NON_NEGATIVE)
    peft: str | None = declare(None, "finetune: lora or bitfit (train only those parameters).", "--peft",
                               rules=(NONE, OneOf(PEFT_METHODS, expected="lora | bitfit")))
    lora_r: int = declare(8, "LoRA rank.", rules=POSITIVE_INT)
    lora_alpha: int = declare(16, "LoRA alpha.", rules=POSITIVE_INT)
    lora_dropout: float = declare(0.0, "LoRA dropout.", rules=FRACTION)
    lora_targets: tuple[str, ...] | None = declare(None, "Modules LoRA adapts (default: the backbone's attention "
                                                   "and linear layers).", rules=(NONE, _NAMES))
    frozen_bn: str = declare("eval", "BatchNorm in frozen layers: eval keeps running statistics fixed (Keras users' "
                             "trap), train.", rules=OneOf(("eval", "train")))
    #: (the batches of a small, augmented training set are poor estimates: on 3 shapes × 16 images,
    #: 2 epochs of LP-FT scored 85% with them frozen, 63% with them moving)
    bn_stats: str = declare("frozen", "BatchNorm statistics of the layers that train: frozen keeps the pretrained "
                            "running statistics; train updates them.", rules=OneOf(("frozen", "train")))
    channels_last: bool = declare(True, "Run convolutions in channels-last memory layout.", rules=FLAG)
    #: (96-px images are not upscaled to 240: ~6x fewer pixels a step)
    input_size: int | None = declare(None, "The input size (pixels) fine-tuning runs at: None → the data's own "
                                     "resolution when it is smaller than the model's.", rules=(NONE, POSITIVE_INT))
    devices: int | str = declare(1, "finetune: number of devices (2+ → DDP), or auto.", "--devices", rules=_DEVICES,
                                 resumable=True)
    accelerator: str = declare("auto", "finetune: auto, cpu or gpu.", "--accelerator",
                               rules=OneOf(("auto", "cpu", "gpu", "cuda", "mps"), expected="auto | cpu | gpu"),
                               resumable=True)
    num_workers: int | None = declare(None, "Data-loading worker processes (default: by CPU count).",
                                      rules=(NONE, NON_NEGATIVE_INT), resumable=True)
    #: (Jin et al. 2020 use μ = 1 on every benchmark, and so do we)
    target_weight: float = declare(1.0, "With --adapt-to: the weight μ of the Minimum Class Confusion loss on target "
                                   "batches beside the labelled ones (loss = CE + μ·MCC), 0 for none.",
                                   rules=NON_NEGATIVE)
    mcc_temperature: float = declare(2.5, "With --adapt-to: the MCC loss's temperature (the paper's 2.5).",
                                     rules=POSITIVE)
    #: off by default: measured on the one shifted image set (icons, EfficientNet-Lite0), AdaBN cost 2.4 points
    #: after MCC at fit's defaults (68.4% → 66.0%) and 9–10 on a reduced run, with MCC and alone (README)
    adabn: bool = declare(False, "With --adapt-to: also re-estimate the BatchNorm statistics on the target inputs "
                          "after training (AdaBN; off by default: it cost 2.4-10 points on the shifted image set "
                          "measured).", rules=FLAG)
    monitor: str = declare("val_loss", "What early stopping and the best checkpoint watch: val_loss or val_accuracy.",
                           rules=OneOf(("val_loss", "val_accuracy")))
    patience: int = declare(5, "Early-stopping patience in epochs (0: off).", rules=NON_NEGATIVE_INT)
    lr_find_steps: int = declare(60, "Steps of the LR finder (lr auto).", rules=POSITIVE_INT)

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> FinetuneConfig:
        """Raise `ConfigError` naming the first bad value and what is expected (each field's declared rule)."""
        check_declared(self)
        return self

    def to_dict(self) -> FinetuneConfigRecord:
        values = dataclasses.asdict(self)
        if values["lora_targets"] is not None:
            values["lora_targets"] = list(values["lora_targets"])
        return cast(FinetuneConfigRecord, values)  # asdict's keys are the fields (a test checks the two agree)

    @classmethod
    def from_dict(cls, values: JSONObject) -> FinetuneConfig:
        """From `to_dict()` output (or an older bundle's config, whose extra keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if kept.get("lora_targets") is not None:
            kept["lora_targets"] = tuple(kept["lora_targets"])
        return cls(**kept)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls))

    @classmethod
    def resumable(cls) -> frozenset[str]:
        return frozenset(name for name, p in declared(cls).items() if p.resumable)
