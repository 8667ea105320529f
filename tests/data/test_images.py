"""open_image: every mode a user's folder may hold comes out as the 8-bit RGB picture a viewer shows,
and every unreadable file is an InputError that names it."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from transferkit.data.images import IMAGE_EXTENSIONS, image_array, open_image, opened_image, resize_and_crop
from transferkit.errors import DataError, InputError


def _save(img: Image.Image, path: Path, **kwargs: object) -> Path:
    img.save(path, **kwargs)
    return path


def _png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height`: a decompression bomb in miniature."""
    buffer = path.with_suffix(".tmp.png")
    Image.new("1", (1, 1)).save(buffer)
    data = bytearray(buffer.read_bytes())
    buffer.unlink()
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


# -- modes -----------------------------------------------------------------------------------------


def test_rgb_jpeg_is_loaded_rgb_and_independent_of_the_file(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (8, 6), (200, 30, 40)), tmp_path / "a.jpg")
    img = open_image(path)
    path.unlink()  # the returned image must not need the file any more
    assert img.mode == "RGB"
    assert img.size == (8, 6)
    r, g, b = img.getpixel((4, 3))
    assert abs(r - 200) < 6 and abs(g - 30) < 6 and abs(b - 40) < 6


def test_accepts_str_paths(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (3, 3), (1, 2, 3)), tmp_path / "a.png")
    assert open_image(str(path)).getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("mode, value, expected", [("L", 100, (100, 100, 100)), ("1", 1, (255, 255, 255))])
def test_grayscale_becomes_grey_rgb(tmp_path: Path, mode: str, value: int, expected: tuple) -> None:
    path = _save(Image.new(mode, (4, 4), value), tmp_path / f"g_{mode}.png")
    img = open_image(path)
    assert img.mode == "RGB"
    assert img.getpixel((1, 1)) == expected


def test_grayscale_with_alpha_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("LA", (2, 1), (50, 255))
    img.putpixel((1, 0), (50, 0))  # fully transparent
    out = open_image(_save(img, tmp_path / "la.png"))
    assert out.getpixel((0, 0)) == (50, 50, 50)
    assert out.getpixel((1, 0)) == (255, 255, 255)


def test_rgba_is_composited_on_white_not_on_black(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1), (255, 0, 0, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))
    img.putpixel((2, 0), (255, 0, 0, 128))
    out = open_image(_save(img, tmp_path / "rgba.png"))
    assert out.getpixel((0, 0)) == (255, 0, 0)
    assert out.getpixel((1, 0)) == (255, 255, 255)
    r, g, b = out.getpixel((2, 0))
    assert r == 255 and 120 <= g <= 135 and 120 <= b <= 135


def test_palette_without_transparency(tmp_path: Path) -> None:
    img = Image.new("RGB", (4, 4), (0, 0, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    out = open_image(_save(img, tmp_path / "p.png"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 255)


def test_palette_gif_with_transparency_shows_white(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * (3 * 254))
    img.putpixel((0, 0), 0)
    path = _save(img, tmp_path / "t.gif", transparency=0)
    with Image.open(path) as stored:
        assert "transparency" in stored.info
    out = open_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # the transparent index, not black
    assert out.getpixel((1, 0)) == (0, 200, 0)


def test_cmyk_is_converted(tmp_path: Path) -> None:
    out = open_image(_save(Image.new("CMYK", (4, 4), (255, 0, 0, 0)), tmp_path / "c.tif"))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 255, 255)  # pure cyan


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    out = open_image(_save(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), tmp_path / "c.jpg"))
    assert out.mode == "RGB"
    assert min(out.getpixel((4, 4))) > 245  # no ink → white


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = _save(Image.fromarray(ramp), tmp_path / "deep.png")
    with Image.open(path) as stored:
        assert stored.mode.startswith("I")
    out = np.asarray(open_image(path))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out.min() <= 1 and out.max() >= 254
    assert 110 < np.median(out) < 145  # clipping at 255 would make most of the ramp white


def test_16_bit_big_endian_and_32_bit_int(tmp_path: Path) -> None:
    big = Image.frombytes("I;16B", (2, 1), struct.pack(">HH", 0, 65535))
    assert np.asarray(open_image(big))[0, :, 0].tolist() == [0, 255]
    wide = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert wide.mode == "I"
    assert np.asarray(open_image(wide))[0, :, 0].tolist() == [0, 128, 255]
    path = _save(wide, tmp_path / "wide.tif")
    assert np.asarray(open_image(path))[0, :, 0].tolist() == [0, 128, 255]


def test_float_images(tmp_path: Path) -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert np.asarray(open_image(_save(unit, tmp_path / "f.tif")))[0, :, 0].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[-10.0, 0.0, 10.0, np.nan]], dtype=np.float32))
    assert np.asarray(open_image(wide))[0, :, 0].tolist() == [0, 128, 255, 128]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = _save(img, tmp_path / "phone.jpg", exif=exif, quality=95)
    out = open_image(path)
    assert out.size == (20, 40)
    top, bottom = out.getpixel((10, 5)), out.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 50  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50



def test_an_image_opened_for_a_block_is_the_picture_open_image_gives(tmp_path: Path) -> None:
    """`opened_image` (which the model's preprocessing reads without copying the decoded pixels) gives what
    `open_image` gives for every kind of file, turned as EXIF says, and the same error for a bad file; the
    model's input is the same bit for bit."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    files = [_save(photo, tmp_path / "photo.jpg", quality=90), _save(photo, tmp_path / "phone.jpg", exif=exif),
             _save(photo.convert("RGBA"), tmp_path / "rgba.png"), _save(photo.convert("CMYK"), tmp_path / "cmyk.jpg"),
             _save(photo.convert("P"), tmp_path / "palette.gif"), _save(photo.convert("L"), tmp_path / "grey.png")]
    config = {"input_size": 224, "crop_pct": 0.875, "interpolation": "bicubic", "small_image": "resize_whole"}
    for path in [*files, photo]:
        with opened_image(path, min_size=256) as img:
            assert img.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(img), np.asarray(open_image(path, min_size=256)))
        expected = np.asarray(resize_and_crop(open_image(path, min_size=256), 224)).transpose(2, 0, 1)
        np.testing.assert_array_equal(image_array(path, config), expected)
    assert open_image(files[1]).size == (300, 400)  # turned upright
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match=r"bad\.jpg"), opened_image(bad):
        pass


def test_pil_image_source_is_not_modified() -> None:
    src = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    out = open_image(src)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert src.mode == "RGBA" and src.getpixel((0, 0)) == (0, 0, 0, 0)
    assert out is not src


def test_extensions_cover_common_formats() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"} <= IMAGE_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in IMAGE_EXTENSIONS)


# -- unreadable files ------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.touch()
    with pytest.raises(InputError, match=r"empty\.jpg.*(empty|0 bytes)"):
        open_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothere\.png.*not found"):
        open_image(tmp_path / "nothere.png")


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a file"):
        open_image(tmp_path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are my notes, not a photo\n")
    with pytest.raises(InputError, match=r"notes\.jpg.*not an image"):
        open_image(path)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", "jpg"), ("PNG", "png")])
def test_truncated_file_is_an_error_not_a_grey_picture(tmp_path: Path, fmt: str, suffix: str) -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    whole = _save(noise, tmp_path / f"whole.{suffix}", format=fmt)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=rf"cut\.{suffix}.*truncated"):
        open_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_pixel_data(tmp_path: Path) -> None:
    whole = _save(Image.new("RGB", (32, 32), (9, 9, 9)), tmp_path / "ok.png")
    data = bytearray(whole.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 20] = b"\xff" * 16  # garbage where the compressed pixels start
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.png"):
        open_image(bad)


def test_input_error_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "e.png"
    path.touch()
    with pytest.raises(DataError):
        open_image(path)


# -- decompression bombs ---------------------------------------------------------------------------


def test_bomb_over_max_pixels_is_refused_from_the_header(tmp_path: Path) -> None:
    # The file holds no pixel data for 5000x5000: decoding it would fail as "truncated". Getting the
    # size message proves the check runs on the header, before any decoding.
    path = _png_with_declared_size(tmp_path / "bomb.png", 5000, 5000)
    with pytest.raises(InputError, match=r"bomb\.png.*5000x5000.*over the limit of 1,000,000"):
        open_image(path, max_pixels=1_000_000)


def test_real_image_over_a_small_limit(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    with pytest.raises(InputError, match=r"big\.png.*100x100"):
        open_image(path, max_pixels=1000)
    with pytest.raises(InputError, match="100x100"):
        open_image(Image.new("RGB", (100, 100)), max_pixels=1000)
    assert open_image(path, max_pixels=10_000).size == (100, 100)


def test_huge_bomb_refused_by_pil_becomes_input_error(tmp_path: Path) -> None:
    path = _png_with_declared_size(tmp_path / "huge.png", 20000, 20000)  # 400 Mpx, > 2x PIL's limit
    with pytest.raises(InputError, match=r"huge\.png.*(bomb|pixels)"):
        open_image(path)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485


@pytest.mark.parametrize("action", ["ignore", "error"])
def test_bomb_warning_zone_becomes_input_error(tmp_path: Path, action: str) -> None:
    # 100 Mpx is between PIL's warning (89.5 Mpx) and error (179 Mpx) thresholds.
    path = _png_with_declared_size(tmp_path / "warn.png", 10000, 10000)
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(InputError, match=r"warn\.png.*(bomb|pixels)"):
            open_image(path)


# -- vector images ---------------------------------------------------------------------------------

SVG = ('<svg xmlns="http://www.w3.org/2000/svg" {size}>'
       '<rect x="0" y="0" width="32" height="32" fill="#ff0000"/></svg>')


def needs_cairosvg() -> None:
    """Skip where cairosvg is not installed (`make test` installs it) or finds no Cairo library."""
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as exc:
        pytest.skip(f"cairosvg is not usable here: {exc}")


def test_an_svg_is_rendered_at_its_shape_on_white(tmp_path: Path) -> None:
    needs_cairosvg()
    from transferkit.data.images import SVG_SHORT_SIDE

    path = tmp_path / "wide.svg"
    path.write_text(SVG.format(size='viewBox="0 0 64 32" width="64px" height="32px"'))
    img = open_image(path)
    assert img.mode == "RGB" and img.size == (2 * SVG_SHORT_SIDE, SVG_SHORT_SIDE)  # the viewBox's shape
    pixels = np.asarray(img)
    assert tuple(pixels[SVG_SHORT_SIDE // 2, SVG_SHORT_SIDE // 2]) == (255, 0, 0)  # the red square, left half
    assert tuple(pixels[SVG_SHORT_SIDE // 2, -5]) == (255, 255, 255)  # transparent → white, as elsewhere
    assert ".svg" in IMAGE_EXTENSIONS and ".svgz" in IMAGE_EXTENSIONS


@pytest.mark.parametrize(("text", "reason"), [
    (SVG.format(size='viewBox="0 0 2000 10"'), "times longer"),
    (SVG.format(size=""), "no size"),
    ('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
     '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><text>&b;</text></svg>',
     "not an SVG cairosvg can read"),
    ("<svg this is not xml", "not an SVG cairosvg can read"),
])
def test_a_hostile_or_broken_svg_is_refused_by_name(tmp_path: Path, text: str, reason: str) -> None:
    needs_cairosvg()
    path = tmp_path / "bad.svg"
    path.write_text(text)
    with pytest.raises(InputError, match=reason) as info:
        open_image(path)
    assert str(path) in str(info.value)


def test_without_cairosvg_an_svg_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from transferkit.data.images import sniff_image

    real_import = builtins.__import__

    def no_cairosvg(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("cairosvg"):
            raise ImportError("No module named 'cairosvg'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_cairosvg)
    path = tmp_path / "icon.svg"
    path.write_text(SVG.format(size='viewBox="0 0 8 8"'))
    assert "transferkit[svg]" in (sniff_image(path) or "")  # a folder scan skips it, counted, with this reason
    with pytest.raises(InputError, match=r"pip install 'transferkit\[svg\]'"):
        open_image(path)


def test_a_folder_of_svg_icons_is_data(tmp_path: Path) -> None:
    needs_cairosvg()
    from transferkit.backbones import create_backbone
    from transferkit.data import load_dataset

    for name, colour in (("red", "#ff0000"), ("blue", "#0000ff")):
        (tmp_path / name).mkdir()
        for i in range(3):
            (tmp_path / name / f"{i}.svg").write_text(SVG.format(size='viewBox="0 0 32 32"').replace("#ff0000", colour))
    (tmp_path / "red" / "broken.svg").write_text("<svg")
    data = load_dataset(tmp_path)
    assert data.classes == ["blue", "red"] and len(data) == 7
    batch = create_backbone("test_efficientnet", weights="random").preprocess([data.items[0]])
    assert batch.shape[0] == 1 and float(batch.std()) > 0


def test_an_input_that_is_not_an_image_is_an_input_error() -> None:
    from transferkit.data.images import image_array

    with pytest.raises(InputError, match="a path or a PIL image, not int"):
        image_array(42, {"input_size": 8})
