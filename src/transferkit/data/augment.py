"""Augmented views of training inputs, for probes trained on features of more than the originals.

A frozen backbone sees each training image once; a head trained on those features alone learns
the training set's colours, crops and orientations as if they were the concept. Features of a
few randomly altered views of each input (random resized crop, horizontal flip, colour jitter,
grayscale for images; speed, pitch, noise and gain for audio, `data.augment_audio`) teach the
head what does not matter — what changes between the training data and data from elsewhere.

`AugmentedItem(source, view, seed)` names one view: the same source, view number and seed give
the same pixels (or samples) on every machine, so a view's features are cached like any input's
(`cache.item_key` keys it by its source's key and the view). `augmenting(loader)` wraps a
backbone's loader so it takes views as well as plain inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from transferkit.data.fingerprint import fingerprint
from transferkit.errors import ConfigError, InputError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from PIL import Image

    from transferkit.data.augment_audio import AudioAugment

#: what a backbone's loader makes of an input (its sample)
SampleT = TypeVar("SampleT")


@dataclass(frozen=True)
class ImageAugment:
    """One random view of an image: crop (area fraction, aspect), flip, colour jitter, grayscale."""

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    jitter: float = 0.3  # brightness, contrast and saturation each drawn in [1 - j, 1 + j]
    grayscale: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"crop scale must be 0 < low <= high <= 1; got {self.scale}")
        for name in ("hflip", "grayscale"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be a probability; got {getattr(self, name)}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"jitter must be in [0, 1); got {self.jitter}")

    def apply(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        from PIL import Image, ImageEnhance, ImageOps

        width, height = image.size
        area = width * height
        for _ in range(10):  # torchvision's RandomResizedCrop rule: 10 tries, then the whole image
            target = area * rng.uniform(*self.scale)
            aspect = float(np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1]))))
            w, h = round(np.sqrt(target * aspect)), round(np.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                image = image.crop((left, top, left + w, top + h)).resize((width, height), Image.Resampling.BICUBIC)
                break
        if rng.random() < self.hflip:
            image = ImageOps.mirror(image)
        if self.jitter:
            for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhance(image).enhance(float(rng.uniform(1 - self.jitter, 1 + self.jitter)))
        if rng.random() < self.grayscale:
            image = image.convert("L").convert("RGB")
        return image


@dataclass(frozen=True)
class AugmentedItem:
    """View number `view` (≥ 1) of `source` under `policy` (a JSON string, so the item is hashable)."""

    source: object
    view: int
    seed: int = 0
    policy: str = field(default="{}")

    def token(self) -> str:
        """What distinguishes this view from its source in a cache key ("content": views are drawn from their
        source's content, `rng`; views drawn from its path, before, had other keys)."""
        digest = hashlib.sha256(f"{self.view}|{self.seed}|{self.policy}|content".encode()).hexdigest()[:16]
        return f"view:{digest}"

    def rng(self) -> np.random.Generator:
        """The view's random draws: seeded by its source's content (a file's size and fingerprint; a text as it
        is), the view number and the seed — not by where the file lies, so the same data copied to another
        folder gets the same views, and the same model."""
        key = hashlib.sha256(f"{_content(self.source)}|{self.view}|{self.seed}".encode("utf-8", "surrogatepass"))
        return np.random.default_rng(int.from_bytes(key.digest()[:8], "little"))

    def __str__(self) -> str:
        return f"{self.source} (augmented view {self.view})"


def _content(source: object) -> str:
    """What identifies `source`'s content: a readable file by its size and fingerprint, an image or array in memory
    by its bytes, anything else by its text."""
    if isinstance(source, str | Path):
        try:
            size = Path(source).stat().st_size
            return f"file:{size}:{fingerprint(source, size)}"
        except (OSError, ValueError):  # not a file, or unreadable: its loader says so
            pass
    if hasattr(source, "tobytes"):  # an image or array in memory: its pixels (its text would name its address)
        return "bytes:" + hashlib.sha256(source.tobytes()).hexdigest()
    return str(source)


def image_view(source: object, view: int, seed: int, policy: ImageAugment | None = None) -> AugmentedItem:
    return AugmentedItem(source, view, seed, json.dumps({"image": asdict(policy or ImageAugment())}))


def audio_view(source: object, view: int, seed: int, policy: AudioAugment | None = None) -> AugmentedItem:
    from transferkit.data.augment_audio import AudioAugment

    return AugmentedItem(source, view, seed, json.dumps({"audio": asdict(policy or AudioAugment())}))


def views_of(items: Sequence[object], modality: str, n_views: int, seed: int) -> list[AugmentedItem]:
    """`n_views` augmented views of each of `items` (view-major: all first views, then all second…)."""
    if n_views < 0:
        raise ConfigError(f"the number of augmented views must be >= 0; got {n_views}")
    makers: dict[str, Callable[[object, int, int], AugmentedItem]] = {"image": image_view, "audio": audio_view}
    make = makers.get(modality)
    if make is None:
        if n_views:
            raise ConfigError(f"augmented views are made of images and audio clips; this is {modality} data "
                              "(use augment=0)")
        return []
    return [make(item, view, seed) for view in range(1, n_views + 1) for item in items]


def materialize(item: AugmentedItem) -> Image.Image | tuple[np.ndarray, int]:
    """The altered input a backbone's loader takes: a PIL image, or (samples, sample rate)."""
    policy = json.loads(item.policy)
    rng = item.rng()
    if "image" in policy:
        from transferkit.data.images import image_source, open_image

        spec: JSONObject = {k: tuple(v) if isinstance(v, list) else v for k, v in policy["image"].items()}
        return ImageAugment(**spec).apply(open_image(image_source(item.source)), rng)
    if "audio" in policy:
        from transferkit.data.audio_clips import read_audio
        from transferkit.data.augment_audio import AudioAugment, augment_waveform

        spec = {k: tuple(v) if isinstance(v, list) else v for k, v in policy["audio"].items()}
        if isinstance(item.source, str | Path):
            samples, rate = read_audio(Path(item.source))
        elif isinstance(item.source, tuple) and len(item.source) == 2:
            samples, rate = item.source
        else:
            raise InputError(f"an audio view is made of a file or (samples, rate), not {type(item.source).__name__}")
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        return augment_waveform(mono.astype(np.float32), rng, AudioAugment(**spec)), rate
    raise ConfigError(f"unknown augmentation policy {item.policy!r}")


class augmenting(Generic[SampleT]):
    """A backbone loader that also takes `AugmentedItem`s (it alters the input, then loads it). Picklable."""

    def __init__(self, loader: Callable[[object], SampleT]) -> None:
        self.loader = loader

    def __call__(self, item: object) -> SampleT:
        return self.loader(materialize(item) if isinstance(item, AugmentedItem) else item)
