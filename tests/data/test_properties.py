"""Property-based tests of the data layer (Hypothesis), issue 12's "Must show".

Random folder trees (odd names: unicode, spaces, leading dots, very long; symlinks up, across and
inside classes, broken links, hard links; broken and empty files), random manifests (bad cells,
several encodings and formats), and random bytes given as images, audio and text. Invariants:

- nothing but a `TransferkitError` escapes (no traceback for the user);
- every input is either used once or skipped with a reason, and a file is never used under a
  class folder that does not hold it;
- nothing is written: the data, the cache folder and the working folder are unchanged.

Derandomized (the same examples on every run) and sized to run in about a minute.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from transferkit.errors import DataError, InputError, TransferkitError

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(buffer, format="JPEG")
    return buffer.getvalue()


PNG, JPEG = _png(), _jpeg()
CONTENTS: dict[str, bytes] = {
    "png": PNG,
    "jpeg": JPEG,
    "truncated": JPEG[: len(JPEG) // 2],
    "empty": b"",
    "text": "a line of text, café\n".encode(),
    "pdf": b"%PDF-1.4 not an image",
}

# -- names ----------------------------------------------------------------------------------------

_SPECIAL_NAMES = [
    " spaced  name ", ".hidden", "..dots", "ünïcödé", "日本語", "a" * 200, "__MACOSX", "train", "test",
    "val", "-dash", "semi;colon", "quote'd", "tab\tname", "new\nline", "%s%n", "CON",
]


def _valid_name(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\x00" not in name and len(name.encode()) <= 200


names = st.one_of(
    st.sampled_from(_SPECIAL_NAMES),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "So", "Cn"), blacklist_characters="/\x00"),
        min_size=1, max_size=24,
    ),
).filter(_valid_name)

extensions = st.sampled_from([".jpg", ".png", ".JPG", ".jpeg", ".txt", "", ".png.bak", ".gif"])


@st.composite
def trees(draw: st.DrawFn) -> dict[str, Any]:
    """A folder-tree spec: classes (optionally under split folders) of files and sub-folders, then links."""
    split = draw(st.booleans()) and draw(st.booleans())
    classes = draw(st.lists(names, min_size=1, max_size=4, unique_by=lambda n: n.lower()))
    files = []
    for c in classes:
        for _ in range(draw(st.integers(0, 4))):
            sub = draw(st.one_of(st.none(), names))
            files.append({
                "split": draw(st.sampled_from(["train", "test"])) if split else None,
                "class": c,
                "sub": sub,
                "name": draw(names) + draw(extensions),
                "content": draw(st.sampled_from(sorted(CONTENTS))),
            })
    links = draw(st.lists(
        st.fixed_dictionaries({
            "kind": st.sampled_from(["up", "root", "other_class", "own_sub", "self", "file_other", "broken",
                                     "hardlink", "class_link", "outside"]),
            "a": st.integers(0, 10), "b": st.integers(0, 10), "name": names,
        }),
        max_size=4,
    ))
    loose = draw(st.booleans())
    return {"split": split, "classes": classes, "files": files, "links": links, "loose": loose}


def _class_dir(root: Path, f: dict[str, Any]) -> Path:
    return root / f["split"] / f["class"] if f["split"] else root / f["class"]


def build(root: Path, spec: dict[str, Any]) -> None:
    """Materialise a `trees()` spec under `root` (collisions are skipped: the spec is a wish list)."""
    root.mkdir(parents=True)
    made: list[Path] = []
    for f in spec["files"]:
        folder = _class_dir(root, f) / f["sub"] if f["sub"] else _class_dir(root, f)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f["name"]
            if path.exists() or path.is_symlink():
                continue
            path.write_bytes(CONTENTS[f["content"]])
            made.append(path)
        except OSError:
            continue
    class_dirs = sorted({_class_dir(root, f) for f in spec["files"] if _class_dir(root, f).is_dir()})
    for link in spec["links"]:
        if not class_dirs:
            break
        here = class_dirs[link["a"] % len(class_dirs)]
        other = class_dirs[link["b"] % len(class_dirs)]
        at = here / link["name"]
        if at.exists() or at.is_symlink():
            continue
        kind = link["kind"]
        try:
            if kind == "up":
                at.symlink_to("..")
            elif kind == "root":
                at.symlink_to(root)
            elif kind == "other_class":
                at.symlink_to(other)
            elif kind == "self":
                at.symlink_to(".")
            elif kind == "own_sub":
                subs = sorted(p for p in here.iterdir() if p.is_dir() and not p.is_symlink())
                at.symlink_to(subs[0] if subs else here)
            elif kind == "file_other" and made:
                at.symlink_to(made[link["b"] % len(made)])
            elif kind == "hardlink" and made:
                os.link(made[link["b"] % len(made)], at)
            elif kind == "broken":
                at.symlink_to(root / "does-not-exist")
            elif kind == "class_link":
                target = (root / f"{link['name']}-linked")
                if not target.exists():
                    target.symlink_to(other)
            elif kind == "outside":
                outside = root.parent / "outside"
                outside.mkdir(exist_ok=True)
                (outside / "o.png").write_bytes(PNG)
                at.symlink_to(outside)
        except OSError:
            continue
    if spec["loose"]:
        (root / "loose.png").write_bytes(PNG)


# -- the invariants ------------------------------------------------------------------------------


def snapshot(*folders: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under `folders` (not following links): size, mtime and link target."""
    seen: dict[str, tuple[int, int, str]] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st_ = os.lstat(path)
                target = os.readlink(path) if os.path.islink(path) else ""
                seen[path] = (st_.st_size, st_.st_mtime_ns if not os.path.isdir(path) else 0, target)
    return seen


def _top(folder: Path) -> dict[str, int]:
    return {entry.name: entry.stat(follow_symlinks=False).st_mtime_ns for entry in os.scandir(folder)}


@contextmanager
def nothing_written(*folders: Path) -> Iterator[None]:
    """Fail if anything under `folders` or the cache folder, or the working folder's own entries, change."""
    watched = [*folders, Path(os.environ["TRANSFERKIT_CACHE"])]
    before, cwd = snapshot(*watched), _top(Path.cwd())
    yield
    assert snapshot(*watched) == before, "the data layer wrote or changed something"
    assert _top(Path.cwd()) == cwd, "the data layer wrote into the working folder"


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in Path(rel).parts)


def _physical_inputs(root: Path) -> list[str]:
    """Every file, file link and broken link under `root` that is not hidden, found without following
    links (a followed folder link is accounted for by the files it leads to, which are here too)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if _hidden(os.path.relpath(path, root)):
                continue
            if os.path.isdir(path):  # a followed-or-not folder link: accounted for by what it holds
                continue
            found.append(path)
    return found


def check_scan(root: Path, data: Any) -> None:
    items = list(data.items)
    skipped = data.skipped
    # used once: no file (by identity) twice
    identities = [(os.stat(p).st_dev, os.stat(p).st_ino) for p in items]
    assert len(identities) == len(set(identities)), "a file is used twice"
    assert len(items) == len(set(items))
    for path, label in zip(items, data.labels, strict=True):
        assert os.path.isfile(path)
        rel = Path(os.path.relpath(path, root)).parts
        class_dir = root / rel[0] / rel[1] if data.splits is not None else root / rel[0]
        assert label == class_dir.name, (path, label)
        real_class = os.path.realpath(class_dir)
        real = os.path.realpath(path)
        # never under a class folder that does not hold it: reached through folder links, the file
        # lies inside the class folder (a link to one file is the user putting it there)
        assert os.path.islink(path) or real.startswith(real_class + os.sep), (path, real, real_class)
    # every input used or skipped with a reason
    used = set(items)
    for path in _physical_inputs(root):
        accounted = path in used or path in skipped or any(
            str(parent) in skipped for parent in Path(path).parents if str(parent).startswith(str(root))
        )
        assert accounted, f"{path} was neither used nor skipped"
    for path, reason in skipped.items():
        assert isinstance(reason, str) and reason.strip(), path


# -- folder trees -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@settings(SETTINGS, max_examples=140)
@given(spec=trees())
def test_folder_trees_are_scanned_honestly(base: Path, spec: dict[str, Any]) -> None:
    """Issue 12 items 3 and 10 (property): any tree, any names, any links — counted once or skipped."""
    from transferkit.data import load_dataset

    work = Path(tempfile.mkdtemp(dir=base))
    try:
        root = work / "data"
        build(root, spec)
        with nothing_written(work):
            try:
                data = load_dataset(root)
            except TransferkitError:
                return
            check_scan(root, data)
            for path in data.items:  # what the scan passed is a file an image reader may open
                try:
                    from transferkit.data.images import open_image

                    open_image(path)
                except InputError:
                    pass
            try:
                data.validate_for_training()
            except DataError:
                pass
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- manifests --------------------------------------------------------------------------------------

labels = st.one_of(
    st.sampled_from(["café", "cafè", "cat", " dog ", "", "  ", "01", "NA", "ü", "naïve", "a,b", 'q"uote', "x\ny"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "So", "Cn")), max_size=12),
)
path_cells = st.sampled_from(["a.png", "b.png", "missing.png", "", "sub\\c.png", "./a.png", "../data/b.png", "é.png"])
split_cells = st.sampled_from(["train", "val", "Validation", "test", "holdout", ""])
encodings = st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
formats = st.sampled_from(["csv", "tsv", "jsonl", "json"])


def _write_manifest(path: Path, rows: list[dict[str, str]], fmt: str, encoding: str) -> bool:
    """False when the rows cannot be written in `encoding` (then the example is not used)."""
    if fmt in ("csv", "tsv"):
        import csv

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["path", "label", "split"], delimiter="," if fmt == "csv" else "\t")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    elif fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False)
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        return False
    return True


@settings(SETTINGS, max_examples=150)
@given(
    rows=st.lists(st.fixed_dictionaries({"path": path_cells, "label": labels, "split": split_cells}),
                  min_size=1, max_size=8),
    fmt=formats, encoding=encodings, tell=st.booleans(), modality=st.sampled_from(["image", "text"]),
)
def test_manifests_are_read_or_refused_clearly(
    base: Path, rows: list[dict[str, str]], fmt: str, encoding: str, tell: bool, modality: str
) -> None:
    """Issue 12 item 7 (property): a manifest loads with the labels it holds, or a DataError says why;
    labels are never merged through replacement characters."""
    from transferkit.data import load_dataset

    work = Path(tempfile.mkdtemp(dir=base))
    try:
        data_dir = work / "data"
        (data_dir / "sub").mkdir(parents=True)
        for name in ("a.png", "b.png", "é.png"):
            (data_dir / name).write_bytes(PNG)
        path = data_dir / f"m.{fmt}"
        if not _write_manifest(path, rows, fmt, encoding):
            return
        with nothing_written(work), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an encoding note is a warning, by design
            try:
                data = load_dataset(path, modality=modality, encoding=encoding if tell else None)
            except TransferkitError:
                return
        expected = [r["label"].strip() for r in rows]
        kept = len(data.items) + len(data.skipped)
        assert kept == len(rows), "a row was neither used nor skipped"
        if modality == "image":
            assert data.labels == expected and len(data.items) == len(rows)
            assert all(os.path.isfile(p) for p in data.items)
        else:
            assert set(data.labels) <= set(expected)
        if tell or encoding in ("utf-8", "utf-8-sig", "utf-16"):
            assert all(label in expected for label in data.labels)
        assert all("\ufffd" not in label for label in data.labels if not any("\ufffd" in e for e in expected))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- random bytes as images, audio and text ---------------------------------------------------------

_PREFIXES = [b"", PNG[:16], JPEG[:4], b"GIF89a", b"BM", b"II*\x00", b"P6\n3 2\n255\n", b"RIFF\x24\x00\x00\x00WAVEfmt ",
             b"fLaC", b"OggS", b"\xff\xfe", b"\xef\xbb\xbf", b"%PDF-", b"PK\x03\x04"]


@st.composite
def blobs(draw: st.DrawFn) -> bytes:
    """Random bytes, often after a real file signature (so decoders get past their first check)."""
    prefix = draw(st.sampled_from(_PREFIXES))
    body = draw(st.binary(max_size=600))
    if draw(st.booleans()) and prefix == PNG[:16]:
        return PNG[: draw(st.integers(0, len(PNG)))] + body  # a truncated or extended real PNG
    return prefix + body


@settings(SETTINGS, max_examples=200)
@given(raw=blobs(), suffix=st.sampled_from([".jpg", ".png", ".gif", ".bmp", ".tif", ".ppm", ".webp"]))
def test_random_bytes_as_an_image(base: Path, raw: bytes, suffix: str) -> None:
    """Issue 12 (property): any bytes named as an image decode to RGB or raise InputError, nothing else."""
    from transferkit.data.images import open_image, sniff_image

    path = Path(tempfile.mkdtemp(dir=base)) / f"x{suffix}"
    path.write_bytes(raw)
    try:
        with nothing_written(path.parent), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a damaged EXIF block is a warning, by design
            reason = sniff_image(path)
            assert reason is None or isinstance(reason, str)
            try:
                image = open_image(path, max_pixels=4_000_000)
            except InputError as exc:
                assert str(path) in str(exc)
                return
            assert image.mode == "RGB"
            assert reason is None, "the sniffer refused an image PIL reads"
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@settings(SETTINGS, max_examples=150)
@given(raw=blobs(), suffix=st.sampled_from([".wav", ".flac", ".ogg"]))
def test_random_bytes_as_audio(base: Path, raw: bytes, suffix: str) -> None:
    """Issue 12 items 10 (property): any bytes named as audio load or raise InputError naming the file,
    and numpy never prints a RuntimeWarning."""
    from transferkit.data.audio_clips import load_audio, sniff_audio

    path = Path(tempfile.mkdtemp(dir=base)) / f"x{suffix}"
    path.write_bytes(raw)
    try:
        with nothing_written(path.parent), warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            reason = sniff_audio(path)
            try:
                wave = load_audio(path, min_duration_s=0.0)
            except InputError as exc:
                assert str(path) in str(exc)
                return
            assert wave.ndim == 1 and wave.numel() > 0
            assert reason is None
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@settings(SETTINGS, max_examples=200)
@given(raw=st.one_of(blobs(), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))),
       suffix=st.sampled_from([".txt", ".csv", ".jsonl", ".json", ".md", ""]))
def test_random_bytes_as_text(base: Path, raw: bytes, suffix: str) -> None:
    """Issue 12 item 4 (property): a file given to a text model is read as text only if it is text."""
    from transferkit.data.tables import binary_kind
    from transferkit.data.text_tables import read_text_inputs

    path = Path(tempfile.mkdtemp(dir=base)) / f"x{suffix}"
    path.write_bytes(raw)
    try:
        with nothing_written(path.parent):
            try:
                got = read_text_inputs([str(path)])
            except TransferkitError as exc:
                assert str(path) in str(exc)
                return
        assert binary_kind(raw) is None, "a binary file was read as text"
        assert all("\x00" not in text for text in got.texts)
        assert len(got.texts) == len(got.names)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
