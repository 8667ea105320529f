"""Parameter-efficient fine-tuning: LoRA (via Hugging Face PEFT) and BitFit.

- LoRA (Hu et al. 2021): each targeted `nn.Linear` W gets a trainable low-rank update
  W + (α/r)·B·A, with B initialised to zero so training starts from the pretrained function.
  Targets default to every linear layer of the backbone (attention and MLP of ViT-style and text
  encoders). Injected with `peft.inject_adapter_in_model`, so the backbone keeps its contract.
- BitFit (Ben Zaken et al. 2022): only the backbone's bias terms train.

Either way the rest of the backbone is frozen, and the bundle stores only the trained tensors
plus the backbone's reference and weights hash.
"""

from __future__ import annotations

from torch import nn

from transferkit.errors import ConfigError
from transferkit.jsontypes import JSONObject


def linear_targets(backbone: nn.Module) -> list[str]:
    """Names of the backbone's linear layers (the pretrained classifier excluded)."""
    names = [
        name for name, m in backbone.named_modules() if isinstance(m, nn.Linear) and not name.startswith("source_head")
    ]
    return names


def apply_peft(
    backbone: nn.Module,
    method: str,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    targets: list[str] | None = None,
) -> JSONObject:
    """Prepare `backbone` for `method`; returns the JSON-able description saved in the bundle."""
    if method == "bitfit":
        biases = [n for n, p in backbone.named_parameters() if n.endswith("bias")]
        if not biases:
            raise ConfigError("--peft bitfit: this backbone has no bias terms to train; use --peft lora")
        return {"method": "bitfit"}
    if method != "lora":
        raise ConfigError(f"peft must be 'lora' or 'bitfit'; got {method!r}")
    from peft import LoraConfig, inject_adapter_in_model

    names = targets or linear_targets(backbone)
    if not names:
        raise ConfigError(
            "--peft lora: the backbone has no linear layers to adapt (LoRA suits "
            "ViT-style and text backbones); try --peft bitfit or --freeze gradual"
        )
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
    try:
        inject_adapter_in_model(config, backbone)
    except ValueError as exc:
        raise ConfigError(f"--peft lora: cannot adapt the targets {names[:5]}…: {exc}") from exc
    return {"method": "lora", "r": r, "alpha": alpha, "dropout": dropout, "targets": names}


def is_peft_parameter(name: str, method: str | None) -> bool:
    """Whether backbone parameter `name` trains under `method`."""
    if method == "lora":
        return "lora_" in name
    if method == "bitfit":
        return name.endswith("bias")
    return False
