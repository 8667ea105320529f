"""Fine-tuning settings: one typed dataclass, validated once, shared by the CLI, YAML files and Python.

Precedence is defaults < YAML (`--config FILE.yaml`) < flags given on the command line. A YAML
file may set every `transferkit fit` option (probe ones too); an unknown key is an error naming
the close matches, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferkit.errors import ConfigError

FREEZE_MODES = ("frozen", "full", "gradual")
PEFT_METHODS = ("lora", "bitfit")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "constant")
CLASS_BALANCE = ("auto", "weights", "sampler", "none")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass
class FinetuneConfig:
    """Everything that decides how a backbone + head is fine-tuned (saved in the run and the bundle)."""

    backbone: str = "efficientnet_lite0"
    weights: str | None = None
    head: str = "linear"
    #: frozen: head only; full: everything from the start; gradual: head for `head_epochs`, then
    #: `unfreeze_per_epoch` backbone groups more each epoch, from the top (ULMFiT / fastai).
    #: Default full with layer-wise LR decay 0.7 (the BEiT/ConvNeXt recipe): on the digits figure
    #: (benchmarks/digits_finetune.py, 10 images per class) it scored 88.3% against 77.9% for
    #: gradual and 81.0% for the frozen probe.
    freeze: str = "full"
    head_epochs: int = 1
    unfreeze_per_epoch: int = 1
    epochs: int = 10
    #: learning rate of the head (and of PEFT parameters); "auto" runs Lightning's LR finder.
    lr: float | str = 1e-3
    #: discriminative LRs: backbone group i of G (input → output) gets lr · layer_decay^(G − i).
    layer_decay: float = 0.7
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    batch_size: int = 32
    label_smoothing: float = 0.0
    #: auto: class-weighted loss when the largest class is ≥ 3x the smallest; weights; sampler; none.
    class_balance: str = "auto"
    #: L2-SP (Li et al. 2018): α/2·‖w_S − w_S⁰‖² on the backbone, β/2·‖w_head‖² on the head.
    l2sp_alpha: float = 0.0
    l2sp_beta: float = 0.0
    #: timm training augmentation (train split only): random-resized-crop scale, flip, colour jitter.
    augment: bool = True
    aug_scale_min: float = 0.08
    aug_hflip: float = 0.5
    aug_color_jitter: float = 0.4
    peft: str | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    #: BatchNorm in frozen layers: "eval" keeps running statistics fixed (Keras users' trap), "train".
    frozen_bn: str = "eval"
    precision: str = "auto"
    channels_last: bool = True
    #: override the backbone's input size (pixels), e.g. smaller for speed on tiny images.
    input_size: int | None = None
    devices: int | str = 1
    accelerator: str = "auto"
    num_workers: int | None = None
    monitor: str = "val_loss"
    patience: int = 5
    lr_find_steps: int = 60
    seed: int = 0
    progress: bool = True

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> FinetuneConfig:
        """Raise `ConfigError` naming the first bad value and what is expected."""
        checks: list[tuple[str, bool, str]] = [
            ("freeze", self.freeze in FREEZE_MODES, " | ".join(FREEZE_MODES)),
            ("peft", self.peft is None or self.peft in PEFT_METHODS, "lora | bitfit"),
            ("optimizer", self.optimizer in OPTIMIZERS, " | ".join(OPTIMIZERS)),
            ("scheduler", self.scheduler in SCHEDULERS, " | ".join(SCHEDULERS)),
            ("class_balance", self.class_balance in CLASS_BALANCE, " | ".join(CLASS_BALANCE)),
            ("precision", self.precision in PRECISIONS, " | ".join(PRECISIONS)),
            ("frozen_bn", self.frozen_bn in ("eval", "train"), "eval | train"),
            ("monitor", self.monitor in ("val_loss", "val_accuracy"), "val_loss | val_accuracy"),
            ("epochs", _pos_int(self.epochs), "a positive integer"),
            ("batch_size", _pos_int(self.batch_size), "a positive integer"),
            ("head_epochs", isinstance(self.head_epochs, int) and self.head_epochs >= 0, "an integer ≥ 0"),
            ("unfreeze_per_epoch", _pos_int(self.unfreeze_per_epoch), "a positive integer"),
            (
                "lr",
                self.lr == "auto" or (isinstance(self.lr, int | float) and self.lr > 0),
                "a positive number or 'auto'",
            ),
            ("layer_decay", _num(self.layer_decay) and 0 < self.layer_decay <= 1, "a number in (0, 1]"),
            ("weight_decay", _num(self.weight_decay) and self.weight_decay >= 0, "a number ≥ 0"),
            ("warmup_epochs", _num(self.warmup_epochs) and self.warmup_epochs >= 0, "a number ≥ 0"),
            (
                "label_smoothing",
                _num(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "a number in [0, 1)",
            ),
            ("l2sp_alpha", _num(self.l2sp_alpha) and self.l2sp_alpha >= 0, "a number ≥ 0"),
            ("l2sp_beta", _num(self.l2sp_beta) and self.l2sp_beta >= 0, "a number ≥ 0"),
            ("aug_scale_min", _num(self.aug_scale_min) and 0 < self.aug_scale_min <= 1, "a number in (0, 1]"),
            ("aug_hflip", _num(self.aug_hflip) and 0 <= self.aug_hflip <= 1, "a probability"),
            ("lora_r", _pos_int(self.lora_r), "a positive integer"),
            ("patience", isinstance(self.patience, int) and self.patience >= 0, "an integer ≥ 0 (0: off)"),
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "a non-negative integer"),
            ("input_size", self.input_size is None or _pos_int(self.input_size), "a positive integer"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{name} must be {expected}; got {getattr(self, name)!r}")
        if isinstance(self.devices, str) and self.devices != "auto" and not self.devices.isdigit():
            raise ConfigError(f"devices must be a number or 'auto'; got {self.devices!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: `fit` options that are not fine-tuning settings but may also be given in a YAML file.
WORKFLOW_KEYS = frozenset(
    {
        "strategy",
        "out",
        "val",
        "test",
        "class_weight",
        "path_column",
        "label_column",
        "strict",
        "overwrite",
        "cache_dir",
        "no_cache",
        "resume",
        "as_json",
    }
)
#: YAML spellings accepted for CLI option names.
_ALIASES = {"json": "as_json", "batch-size": "batch_size", "learning_rate": "lr"}


def config_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(FinetuneConfig)} | set(WORKFLOW_KEYS)


def read_yaml_options(path: str | Path) -> dict[str, Any]:
    """Options from a YAML file (a flat mapping of `fit` option → value), keys checked."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config '{p}': no such file")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config '{p}' is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"--config '{p}' must be a mapping of option: value; got {type(raw).__name__}")
    options: dict[str, Any] = {}
    keys = config_keys()
    for key, value in raw.items():
        name = _ALIASES.get(str(key), str(key).replace("-", "_"))
        if name not in keys:
            close = difflib.get_close_matches(name, sorted(keys), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"--config '{p}': unknown option '{key}'.{hint}")
        options[name] = value
    return options


@dataclass
class FitOptions:
    """A resolved `fit` call: workflow settings plus the fine-tuning config."""

    workflow: dict[str, Any] = field(default_factory=dict)
    config: FinetuneConfig = field(default_factory=FinetuneConfig)


def merge_options(cli: dict[str, Any], explicit: set[str], yaml_options: dict[str, Any]) -> dict[str, Any]:
    """defaults (the CLI's) < YAML < flags the user actually typed."""
    merged = dict(cli)
    for key, value in yaml_options.items():
        if key not in explicit:
            merged[key] = value
    return merged
