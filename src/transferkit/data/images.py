"""Reading one image file into an 8-bit RGB `PIL.Image`, or saying clearly why it cannot be read.

Every image backbone starts from `open_image`, so whatever a user's folder holds — grayscale
scans, palette GIFs with transparency, RGBA PNGs, CMYK JPEGs from print workflows, 16-bit or float
TIFFs from instruments, phone photos rotated by an EXIF tag — reaches the model as the picture a
person sees in an image viewer, in one mode (RGB, 8 bits per channel).

An input that cannot be read raises `InputError` naming the file and the reason, so that callers
can skip it and count it. In particular:

- a truncated file is an error, never a half-grey picture: PIL's global `LOAD_TRUNCATED_IMAGES`
  is left alone (this module changes no PIL global state at all);
- a decompression bomb (a small file whose header declares a huge picture) is refused from its
  header, right after `Image.open`, before any pixel is decoded.
"""

from __future__ import annotations

import os
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from transferkit.errors import InputError
from transferkit.jsontypes import JSONObject

#: Vector images: rendered with cairosvg (an optional dependency: `pip install 'transferkit[svg]'`).
SVG_EXTENSIONS: frozenset[str] = frozenset({".svg", ".svgz"})

#: File extensions (lower case, with the dot) that folder scans treat as images.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
) | SVG_EXTENSIONS

#: An SVG is rendered with this many pixels on its shorter side (more than any backbone's input
#: needs; the model's own resize takes it from there) …
SVG_SHORT_SIDE = 384
#: … and refused when its longer side is more than this many times its shorter one.
SVG_MAX_ASPECT = 20.0

#: PIL's own default limit (about 89.5 megapixels, a 0.25 GB 24-bit image).
DEFAULT_MAX_PIXELS = 89_478_485

#: Background that transparent pixels are composited onto: white, as most viewers show them.
_BACKGROUND = (255, 255, 255)

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def open_image(
    source: str | Path | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int | None = None
) -> Image.Image:
    """Return `source` as a new, fully loaded 8-bit RGB image, upright as EXIF says.

    `min_size`: the caller will downscale to this short side anyway, so a JPEG file may be decoded
    at a reduced scale (libjpeg's DCT scaling, `Image.draft`) as long as both sides stay at least
    `min_size`. A 12-megapixel photo then decodes ~8x faster; smaller images are unaffected.

    `source` is a path, or an image already opened with PIL (it is not modified or closed).
    Raises `InputError` naming the file for a missing, empty, truncated or corrupt file, for bytes
    that are not an image, and for an image of more than `max_pixels` pixels (checked from the
    header, before decoding).
    """
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "<in-memory image>"
        _check_size(source, name, max_pixels)
        return _to_rgb(_upright(_loaded(source, name), name), name)

    path = Path(source)
    name = str(path)
    _check_file(path)
    if path.suffix.lower() in SVG_EXTENSIONS:
        return _to_rgb(_loaded(render_svg(path), name), name)
    with _opened_file(path, max_pixels, min_size) as img:
        return _to_rgb(_upright(img, name), name)


@contextmanager
def opened_image(
    source: str | Path | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int | None = None
) -> Iterator[Image.Image]:
    """`open_image(source, max_pixels, min_size)`, for use inside the `with` block only: from an image file, the
    picture may be the file's own image, closed when the block ends. For a caller that makes a new image of it
    anyway (a resize): `open_image` copies the decoded pixels so that its image outlives the file's, 0.45 of
    the 1.2 ms (CPU) a 400x300 JPEG took to open. The same pixels; the same errors."""
    path = None if isinstance(source, Image.Image) else Path(source)
    if path is None or path.suffix.lower() in SVG_EXTENSIONS:
        yield open_image(source, max_pixels=max_pixels, min_size=min_size)
        return
    _check_file(path)
    with _opened_file(path, max_pixels, min_size) as img:
        yield _to_rgb(_upright(img, str(path), in_place=True), str(path))


def _opened_file(path: Path, max_pixels: int, min_size: int | None) -> Image.Image:
    """The image file at `path` opened, its size checked, decoded (at a reduced scale where `min_size` allows)."""
    name = str(path)
    try:
        opened = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # PIL refuses (or, with warnings turned into errors, warns about) huge headers on its own.
        raise InputError(
            f"{name}: refused as a possible decompression bomb ({exc}). "
            "If the image is genuine, downscale it before training."
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(
            f"{name}: not an image PIL can read (unknown or corrupt format); "
            "remove the file or convert it to PNG/JPEG"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: cannot open image ({type(exc).__name__}: {exc})") from exc
    try:
        _check_size(opened, name, max_pixels)
        if min_size is not None and opened.format == "JPEG":
            opened.draft(None, (min_size, min_size))
        return _loaded(opened, name)
    except BaseException:
        opened.close()
        raise


def sniff_image(path: str | Path) -> str | None:
    """Why `path` is certainly not a readable image, or None when it may be one (cheap: 16 bytes).

    The first bytes are matched against the signatures of every format PIL reads (PIL's own
    `accept` test, the one `Image.open` starts with); only a file that matches none is opened
    with PIL, which then tries the formats that have no signature. A file that passes can still
    turn out truncated or corrupt when decoded; that is reported by `open_image`.
    """
    try:
        with open(path, "rb") as fh:
            prefix = fh.read(16)
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"
    if not prefix:
        return "empty file (0 bytes), not an image"
    if Path(path).suffix.lower() in SVG_EXTENSIONS:  # text (or gzip): read when rendered
        try:
            _cairosvg()
        except InputError as exc:
            return str(exc)
        return None
    Image.init()
    for ident in Image.ID:
        accept = Image.OPEN[ident][1]
        try:
            if accept is not None and accept(prefix):
                return None
        except Exception:  # a plugin's signature test failing on odd bytes is a no, not an error
            continue
    try:
        with Image.open(path):
            return None
    except Exception:
        kind = _known_kind(prefix)
        return (
            f"not an image ({kind})" if kind else
            "not an image: its first bytes match no image format PIL reads (another kind of file, renamed?)"
        )


def _cairosvg() -> types.ModuleType:
    """The cairosvg module, or an `InputError` saying how to get it (it needs the Cairo library too)."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: cairocffi found no libcairo
        raise InputError(
            f"SVG (vector) images are rendered with cairosvg, which is not usable here ({type(exc).__name__}: "
            f"{exc}); pip install 'transferkit[svg]' (and the Cairo library: apt-get install libcairo2), "
            "or convert the files to PNG"
        ) from None
    return cairosvg


def render_svg(path: str | Path) -> Image.Image:
    """An SVG file rendered to an RGBA `PIL.Image`, its shorter side `SVG_SHORT_SIDE` pixels.

    Rendered with cairosvg in its safe mode (no external files, URLs or XML entities). The size
    comes from the root's viewBox (else its width and height), so the picture keeps its shape; one
    longer than `SVG_MAX_ASPECT` times its width, or with no size at all, is refused rather than
    rendered to an unbounded surface.
    """
    import io

    name = str(path)
    _cairosvg()
    try:
        from cairosvg.parser import Tree

        tree = Tree(url=str(path), unsafe=False)
        width, height = _svg_size(tree)
    except InputError:
        raise
    except Exception as exc:  # XML errors, refused entities, unreadable gzip …
        raise InputError(f"{name}: not an SVG cairosvg can read ({type(exc).__name__}: {exc})") from exc
    if not (width > 0 and height > 0):
        raise InputError(f"{name}: the SVG declares no size (no viewBox, width or height); cannot render it")
    if max(width, height) / min(width, height) > SVG_MAX_ASPECT:
        raise InputError(f"{name}: the SVG is {width:g}x{height:g}, more than {SVG_MAX_ASPECT:g} times longer "
                         "than wide; refused (render it yourself if it is genuine)")
    scale = SVG_SHORT_SIDE / min(width, height)
    try:
        from cairosvg.surface import PNGSurface

        png = io.BytesIO()  # rendered from the tree parsed above (what `cairosvg.svg2png` does after parsing)
        PNGSurface(tree, png, 96, output_width=round(width * scale), output_height=round(height * scale)).finish()
        png.seek(0)
        return Image.open(png)
    except Exception as exc:
        raise InputError(f"{name}: cannot render the SVG ({type(exc).__name__}: {exc})") from exc


class _SvgRoot(Protocol):
    """What `_svg_size` reads of cairosvg's parsed root (cairosvg ships no types)."""

    def get(self, key: str) -> str | None: ...


def _svg_size(tree: _SvgRoot) -> tuple[float, float]:
    """Width and height of an SVG root in its own units: the viewBox's, else plain width/height numbers."""
    import re

    box = tree.get("viewBox")
    if box:
        parts = [float(v) for v in re.split(r"[\s,]+", box.strip()) if v]
        if len(parts) == 4:
            return parts[2], parts[3]
    numbers = [re.match(r"\s*([0-9.]+(?:e[-+]?\d+)?)", tree.get(k) or "") for k in ("width", "height")]
    return (float(numbers[0].group(1)) if numbers[0] else 0.0, float(numbers[1].group(1)) if numbers[1] else 0.0)


#: signatures of common files that are not images, to say what a misplaced file is
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.xlsx document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio/video file"),
    (b"ID3", "an MP3 audio file"),
    (b"\x7fELF", "a program"),
)


def _known_kind(prefix: bytes) -> str | None:
    if prefix.startswith(b"RIFF") and prefix[8:12] == b"WAVE":
        return "a WAV audio file"
    return next((kind for magic, kind in _NOT_IMAGES if prefix.startswith(magic)), None)


def _check_file(path: Path) -> None:
    """Fail early, with a plain message, on inputs PIL would report obscurely."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise InputError(f"{path}: image file not found") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read image file ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise InputError(f"{path}: is not a file (expected an image file)")
    if size == 0:
        raise InputError(f"{path}: empty file (0 bytes), not an image; remove it or replace it")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied; cannot read the image file")


def _check_size(img: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse an image whose header declares more than `max_pixels` pixels (nothing decoded yet)."""
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (a possible decompression bomb). Downscale it, or raise max_pixels "
            "if the image is genuine."
        )


def _loaded(img: Image.Image, name: str) -> Image.Image:
    """Decode the pixels now, so a truncated or corrupt file fails here and not in a worker later."""
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{name}: refused as a possible decompression bomb ({exc})") from exc
    except Exception as exc:  # PIL plugins raise OSError, SyntaxError, struct.error, zlib.error…
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            reason = f"file is truncated or incomplete ({reason})"
        raise InputError(f"{name}: cannot decode image: {reason}") from exc
    return img


def _upright(img: Image.Image, name: str, in_place: bool = False) -> Image.Image:
    """Apply the EXIF orientation tag (phone photos), returning a new image (`img` itself, turned, `in_place`).

    A damaged EXIF block does not make the picture unreadable, so it is reported as a warning and
    the pixels are used as stored.
    """
    try:
        if in_place:
            ImageOps.exif_transpose(img, in_place=True)
            return img
        return ImageOps.exif_transpose(img)  # not in place: a new image, turned or copied
    except Exception as exc:  # malformed EXIF: PIL raises assorted errors while parsing it
        warnings.warn(
            f"{name}: cannot read the EXIF orientation ({exc}); using the image as stored",
            stacklevel=3,
        )
        return img if in_place else img.copy()


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB the way a viewer would display it."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img), mode), mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode == "P" and "transparency" in img.info
    )
    if mode == "1" or (mode == "P" and not has_alpha):
        return img.convert("RGB")
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, CMYK, YCbCr, RGBX, HSV…
    except ValueError as exc:
        raise InputError(
            f"{name}: image mode {mode!r} cannot be converted to RGB; convert the file to PNG/JPEG"
        ) from exc


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Scale high-bit-depth grayscale to 0..255 without clipping.

    - 16-bit modes use their full range: 0..65535 → 0..255 (divide by 257, so 65535 → 255).
    - 32-bit integer `I` in 0..65535 is the same 16-bit data (older PNG loaders give it);
      otherwise its own min..max is stretched to 0..255.
    - float `F` in 0..1 is scaled by 255; otherwise its own min..max is stretched to 0..255.
    NaN and infinities become 0.
    """
    data = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if data.size == 0:
        return data.astype(np.uint8)
    low, high = float(data.min()), float(data.max())
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and low >= 0 and high <= 65535):
        scaled = data / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = data * 255.0
    elif high > low:
        scaled = (data - low) * (255.0 / (high - low))
    else:  # a constant picture has no range to stretch: keep its value, clipped into 0..255
        scaled = data
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


#: PIL resampling filters by the names a preprocessing config uses
INTERPOLATION = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_and_crop(img: Image.Image, size: int, *, interpolation: str = "bicubic", crop_pct: float = 0.875,
                    small_image: str = "resize_whole") -> Image.Image:
    """timm's eval transform: short side to size / crop_pct, centre crop size² (an image whose short
    side is under `size` is resized whole to size² with small_image="resize_whole"). Always a new image."""
    resample = INTERPOLATION.get(interpolation, Image.Resampling.BICUBIC)
    width, height = img.size
    if min(width, height) < size and small_image == "resize_whole":
        return img.resize((size, size), resample)
    scale_size = int(size / crop_pct)
    if width <= height:
        new_w, new_h = scale_size, max(1, round(height * scale_size / width))
    else:
        new_w, new_h = max(1, round(width * scale_size / height)), scale_size
    img = img.resize((new_w, new_h), resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def image_source(item: object) -> str | Path | Image.Image:
    """`item` as an image input (a path or a PIL image); `InputError` for anything else."""
    if isinstance(item, str | Path | Image.Image):
        return item
    raise InputError(f"an image input is a path or a PIL image, not {type(item).__name__}")


def image_array(source: object, config: JSONObject) -> np.ndarray:
    """One input → the uint8 CHW array a model of this image preprocessing `config` takes (no torch)."""
    source = image_source(source)
    size, crop_pct = int(config["input_size"]), float(config.get("crop_pct", 0.875))
    with opened_image(source, max_pixels=int(config.get("max_pixels", DEFAULT_MAX_PIXELS)),
                      min_size=int(size / crop_pct)) as opened:
        img = resize_and_crop(opened, size, interpolation=str(config.get("interpolation", "bicubic")),
                              crop_pct=crop_pct, small_image=str(config.get("small_image", "resize_whole")))
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
