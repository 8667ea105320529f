"""Fine-tuning settings: one typed dataclass of *how* a backbone + head is trained, validated once.

What is trained (backbone, weights, head, seed, batch size, precision) are the parameters of
`transferkit.estimators.FinetunedClassifier`; this dataclass is its `training` parameter, and the
`fit` options of that name (CLI flags and `--config` YAML keys) fill it (`transferkit.options`).
Fields that a `--resume` may change carry `resumable` in their metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from transferkit.errors import ConfigError

FREEZE_MODES = ("frozen", "full", "gradual")
PEFT_METHODS = ("lora", "bitfit")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "constant")
CLASS_BALANCE = ("auto", "weights", "sampler", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: metadata of the fields a resumed run may change (the rest must match the run as it started)
RESUMABLE = {"resumable": True}


@dataclass(frozen=True)
class FinetuneConfig:
    """How a backbone + head is fine-tuned (saved in the run folder and the bundle)."""

    #: frozen: head only; full: everything from the start; gradual: head for `head_epochs`, then
    #: `unfreeze_per_epoch` backbone groups more each epoch, from the top (ULMFiT / fastai).
    #: Default full with layer-wise LR decay 0.7 (the BEiT/ConvNeXt recipe): on the digits figure
    #: (benchmarks/digits_finetune.py, 10 images per class) it scored 88.3% against 77.9% for
    #: gradual and 81.0% for the frozen probe.
    freeze: str = "full"
    #: probe: fit the new head on the frozen backbone's features first, then fine-tune from there
    #: (LP-FT, Kumar et al., ICLR 2022: a short fine-tune then starts at the probe, and distorts the
    #: pretrained features less under a distribution shift); random: the head starts at random.
    head_init: str = "probe"
    #: finetuned: keep the fine-tuned network; better: with a probe start and a validation split,
    #: keep the probe LP-FT started from instead when it scores higher on validation (what
    #: `--strategy auto` asks for: fine-tuning must earn its place against the probe).
    keep: str = "finetuned"
    head_epochs: int = 1
    unfreeze_per_epoch: int = 1
    epochs: int = field(default=10, metadata=RESUMABLE)
    #: learning rate of the head (and of PEFT parameters); "auto" runs Lightning's LR finder.
    lr: float | str = 1e-3
    #: discriminative LRs: backbone group i of G (input → output) gets lr · layer_decay^(G − i).
    layer_decay: float = 0.7
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    #: auto: class-weighted loss when the largest class is ≥ 3x the smallest; weights; sampler; none.
    class_balance: str = "auto"
    #: L2-SP (Li et al. 2018): α/2·‖w_S − w_S⁰‖² on the backbone, β/2·‖w_head‖² on the head.
    l2sp_alpha: float = 0.0
    l2sp_beta: float = 0.0
    #: timm training augmentation (train split only): random-resized-crop scale, flip, colour jitter.
    augment: bool = True
    aug_scale_min: float = 0.25
    aug_hflip: float = 0.5
    aug_color_jitter: float = 0.4
    peft: str | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] | None = None
    #: BatchNorm in frozen layers: "eval" keeps running statistics fixed (Keras users' trap), "train".
    frozen_bn: str = "eval"
    #: BatchNorm statistics of the layers that train: "frozen" keeps the pretrained running statistics
    #: (the batches of a small, augmented training set are poor estimates: on 3 shapes × 16 images,
    #: 2 epochs of LP-FT scored 85% with them frozen, 63% with them moving); "train" updates them.
    bn_stats: str = "frozen"
    channels_last: bool = True
    #: the input size (pixels) fine-tuning runs at: None → the data's own resolution when it is
    #: smaller than the model's (96-px images are not upscaled to 240: ~6x fewer pixels a step).
    input_size: int | None = None
    devices: int | str = field(default=1, metadata=RESUMABLE)
    accelerator: str = field(default="auto", metadata=RESUMABLE)
    num_workers: int | None = field(default=None, metadata=RESUMABLE)
    #: with unlabelled target inputs (`fit --adapt-to`): the weight μ of the Minimum Class Confusion
    #: loss on target batches beside the labelled ones (loss = CE + μ·MCC; Jin et al. 2020 use μ = 1
    #: on every benchmark, and so do we), 0 for none; its temperature (the paper's 2.5)
    target_weight: float = 1.0
    mcc_temperature: float = 2.5
    #: with target inputs: re-estimate the BatchNorm statistics on them after training (AdaBN)
    adabn: bool = True
    monitor: str = "val_loss"
    patience: int = 5
    lr_find_steps: int = 60

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> FinetuneConfig:
        """Raise `ConfigError` naming the first bad value and what is expected."""
        checks: list[tuple[str, bool, str]] = [
            ("freeze", self.freeze in FREEZE_MODES, " | ".join(FREEZE_MODES)),
            ("head_init", self.head_init in ("probe", "random"), "probe | random"),
            ("keep", self.keep in ("finetuned", "better"), "finetuned | better"),
            ("peft", self.peft is None or self.peft in PEFT_METHODS, "lora | bitfit"),
            ("optimizer", self.optimizer in OPTIMIZERS, " | ".join(OPTIMIZERS)),
            ("scheduler", self.scheduler in SCHEDULERS, " | ".join(SCHEDULERS)),
            ("class_balance", self.class_balance in CLASS_BALANCE, " | ".join(CLASS_BALANCE)),
            ("frozen_bn", self.frozen_bn in ("eval", "train"), "eval | train"),
            ("bn_stats", self.bn_stats in ("frozen", "train"), "frozen | train"),
            ("monitor", self.monitor in ("val_loss", "val_accuracy"), "val_loss | val_accuracy"),
            ("epochs", _pos_int(self.epochs), "a positive integer"),
            ("head_epochs", _int(self.head_epochs) and self.head_epochs >= 0, "an integer ≥ 0"),
            ("unfreeze_per_epoch", _pos_int(self.unfreeze_per_epoch), "a positive integer"),
            ("lr", self.lr == "auto" or (_num(self.lr) and float(self.lr) > 0), "a positive number or 'auto'"),
            ("layer_decay", _num(self.layer_decay) and 0 < self.layer_decay <= 1, "a number in (0, 1]"),
            ("weight_decay", _num(self.weight_decay) and self.weight_decay >= 0, "a number ≥ 0"),
            ("warmup_epochs", _num(self.warmup_epochs) and self.warmup_epochs >= 0, "a number ≥ 0"),
            ("label_smoothing", _num(self.label_smoothing) and 0 <= self.label_smoothing < 1, "a number in [0, 1)"),
            ("l2sp_alpha", _num(self.l2sp_alpha) and self.l2sp_alpha >= 0, "a number ≥ 0"),
            ("l2sp_beta", _num(self.l2sp_beta) and self.l2sp_beta >= 0, "a number ≥ 0"),
            ("augment", isinstance(self.augment, bool), "true or false"),
            ("aug_scale_min", _num(self.aug_scale_min) and 0 < self.aug_scale_min <= 1, "a number in (0, 1]"),
            ("aug_hflip", _num(self.aug_hflip) and 0 <= self.aug_hflip <= 1, "a probability"),
            ("aug_color_jitter", _num(self.aug_color_jitter) and self.aug_color_jitter >= 0, "a number ≥ 0"),
            ("lora_r", _pos_int(self.lora_r), "a positive integer"),
            ("lora_alpha", _pos_int(self.lora_alpha), "a positive integer"),
            ("lora_dropout", _num(self.lora_dropout) and 0 <= self.lora_dropout < 1, "a number in [0, 1)"),
            ("channels_last", isinstance(self.channels_last, bool), "true or false"),
            ("target_weight", _num(self.target_weight) and self.target_weight >= 0, "a number ≥ 0"),
            ("mcc_temperature", _num(self.mcc_temperature) and self.mcc_temperature > 0, "a positive number"),
            ("adabn", isinstance(self.adabn, bool), "true or false"),
            ("patience", _int(self.patience) and self.patience >= 0, "an integer ≥ 0 (0: off)"),
            ("lr_find_steps", _pos_int(self.lr_find_steps), "a positive integer"),
            ("input_size", self.input_size is None or _pos_int(self.input_size), "a positive integer"),
            ("num_workers", self.num_workers is None or (_int(self.num_workers) and self.num_workers >= 0),
             "an integer ≥ 0"),
            ("accelerator", self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps"), "auto | cpu | gpu"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}; got {getattr(self, name)!r}")
        if not (_pos_int(self.devices) or self.devices == "auto"):
            raise ConfigError(f"devices must be a positive number or 'auto'; got {self.devices!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if values["lora_targets"] is not None:
            values["lora_targets"] = list(values["lora_targets"])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
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
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v: Any) -> bool:
    return _int(v) and v > 0


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
