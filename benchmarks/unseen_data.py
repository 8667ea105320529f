"""Evaluation sets with a shift between train and test, built from Debian packages (benchmarks only).

Each set is a folder with a `manifest.csv`: `path` (or `text`), `label`, `group` (the shift
variable) and `split` (train / val / test). Test is the held-out group(s); val is drawn from the
training groups (15% of each class), so it is the *in-domain* validation a user without group
labels would have, and it cannot see the shift. The `group` column is there for group-held-out
validation.

- **icons** (image): 30 freedesktop icon concepts (folder, trash, printer, …) as drawn by ten
  Debian icon themes. Train: Adwaita, Faba, Numix, Papirus, Tango, Breeze, GNOME, nuoveXT2;
  test: Oxygen and elementary, designs never seen in training. Every distinct raster of 32 px or
  more (sizes, name variants) is one image, 96x96, over a plain background.
- **debtext** (text): Debian packages' topic (16 sections: games, science, sound, mail, …), one
  package per source package. Train and val: the long description; test: the one-line synopsis,
  of source packages never seen in training.
- **speech** (audio): 20 spoken words (the ten digits and ten commands) from 8 synthesizer
  voices of 5 speakers (flite: kal, kal16, awb, rms, slt; festival: kal, ked, slt-HTS), each word
  at 3 speaking rates (the synthesizer's own) × 3 pitches (±2 semitones) × 2 tape speeds (±6%),
  padded with silence and with low noise. Train: speakers kal, slt, rms (6 voices); test:
  speakers awb (Scottish English) and ked, never heard.

The unpacked festival binary links PulseAudio's client library: on a machine without it, `apt-get
install libpulse0` first (the speech set's festival voices make 0 clips otherwise, and the build
says so).

Everything comes from pinned Debian package versions, fetched with `apt-get download` into
`<root>/debs` and unpacked with `dpkg-deb -x` (nothing is installed), plus the bookworm
package index with its English descriptions, fetched by `apt-get update` into a private
folder. Same packages, same files: every random choice is a hash of the item's name. (The
package index is bookworm's on the day it is first fetched; a point release changes a few
packages. debtext's build.json records the index's date and checksums, and the fetched index is
kept, so a built set does not change.)

    python benchmarks/unseen_data.py                 # all three, into benchmarks/.data
    python benchmarks/unseen_data.py --sets icons    # or debtext, speech

A set whose manifest exists (for the same build parameters) is skipped. Counts per class and
split are printed. The sources are the Debian packages pinned below and nothing else: icon
themes' application and device icons, package descriptions, and flite/festival voices.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

DATA_ROOT = Path(__file__).resolve().parent / ".data"
SETS = ("icons", "debtext", "speech")
MODALITY = {"icons": "image", "debtext": "text", "speech": "audio"}
VAL_FRACTION = 0.15


# --------------------------------------------------------------------------------------------
# Shared: stable randomness, splits, manifests, Debian packages
# --------------------------------------------------------------------------------------------


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) fixed by `parts` (the same on every machine and run)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rng_for(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def assign_val(rows: list[dict[str, str]], key: str, salt: str) -> None:
    """Mark about VAL_FRACTION of each class's training rows as val, whole values of `key` at a time
    (in an order fixed by a stable hash), so rows that share `key` stay on one side."""
    by_label: dict[str, dict[str, list[dict[str, str]]]] = collections.defaultdict(
        lambda: collections.defaultdict(list))
    for row in rows:
        if row["split"] == "train":
            by_label[row["label"]][row[key]].append(row)
    for label, units in by_label.items():
        target = round(VAL_FRACTION * sum(len(members) for members in units.values()))
        taken = 0
        for unit in sorted(units, key=lambda u: unit_hash(salt, label, u)):
            if taken >= target:
                break
            if taken + len(units[unit]) > target + len(units[unit]) // 2:
                continue  # would overshoot by more than half of it: try a smaller one
            for row in units[unit]:
                row["split"] = "val"
            taken += len(units[unit])


def write_manifest(folder: Path, rows: list[dict[str, str]], fields: Sequence[str], params: dict[str, object],
                   sources: object = None) -> Path:
    """folder/manifest.csv (atomically) and folder/build.json: the parameters it was built from (what
    `is_built` compares) and a note of the sources (index dates, checksums)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "manifest.csv"
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(f.name, target)
    build = {"params": params, "sources": sources}
    (folder / "build.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    return target


def is_built(folder: Path, params: dict[str, object]) -> bool:
    built = folder / "build.json"
    if not (folder / "manifest.csv").is_file() or not built.is_file():
        return False
    return bool(json.loads(built.read_text()).get("params") == json.loads(json.dumps(params)))


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def print_counts(name: str, rows: list[dict[str, str]]) -> None:
    """Rows per class and split, and the groups in each split."""
    splits = ("train", "val", "test")
    counts = collections.Counter((r["label"], r["split"]) for r in rows)
    groups = {s: sorted({r["group"] for r in rows if r["split"] == s}) for s in splits}
    labels = sorted({r["label"] for r in rows})
    width = max(len(label) for label in labels)
    print(f"\n{name}: {len(rows)} rows, {len(labels)} classes")
    for s in splits:
        print(f"  {s:5s} {sum(counts[(lab, s)] for lab in labels):5d} rows  groups: {', '.join(groups[s])}")
    print(f"  {'class':{width}s} " + " ".join(f"{s:>5s}" for s in splits))
    for label in labels:
        print(f"  {label:{width}s} " + " ".join(f"{counts[(label, s)]:5d}" for s in splits))


@dataclass(frozen=True)
class Deb:
    """A Debian package at a pinned version (what `apt-get download NAME=VERSION` fetches)."""

    name: str
    version: str


def fetch_debs(root: Path, debs: Iterable[Deb]) -> dict[str, Path]:
    """Download (once) and unpack (once) each package; returns name → its unpacked root folder."""
    cache, unpacked = root / "debs", root / "pkgs"
    cache.mkdir(parents=True, exist_ok=True)
    unpacked.mkdir(parents=True, exist_ok=True)
    roots: dict[str, Path] = {}
    for deb in debs:
        target = unpacked / f"{deb.name}_{deb.version.replace(':', '%3a')}"
        if not (target / ".complete").is_file():
            archive = _download(cache, deb)
            if target.exists():
                shutil.rmtree(target)
            partial = target.with_name(target.name + ".partial")
            if partial.exists():
                shutil.rmtree(partial)
            subprocess.run(["dpkg-deb", "-x", str(archive), str(partial)], check=True)
            partial.rename(target)
            (target / ".complete").write_text(f"{deb.name} {deb.version}\n")
        roots[deb.name] = target
    return roots


def _download(cache: Path, deb: Deb) -> Path:
    pattern = f"{deb.name}_{deb.version.replace(':', '%3a')}_*.deb"
    found = sorted(cache.glob(pattern))
    if found:
        return found[0]
    result = subprocess.run(["apt-get", "download", f"{deb.name}={deb.version}"], cwd=cache,
                            capture_output=True, text=True)
    found = sorted(cache.glob(pattern))
    if result.returncode != 0 or not found:
        raise SystemExit(
            f"apt-get download {deb.name}={deb.version} failed (exit {result.returncode}): "
            f"{result.stderr.strip()[-400:]}\nThese sets are pinned to Debian 12 (bookworm) versions; "
            f"check `apt-cache policy {deb.name}` and that bookworm is in the apt sources."
        )
    return found[0]


# --------------------------------------------------------------------------------------------
# icons: the same concepts drawn by different icon themes
# --------------------------------------------------------------------------------------------

ICON_DEBS = (
    Deb("adwaita-icon-theme", "43-1"),
    Deb("breeze-icon-theme", "4:5.103.0-1"),
    Deb("elementary-icon-theme", "7.2.0-1"),
    Deb("faba-icon-theme", "4.3-1"),
    Deb("gnome-icon-theme", "3.12.0-5"),
    Deb("lxde-icon-theme", "0.5.1-2.1"),
    Deb("numix-icon-theme", "0~20230220-1"),
    Deb("oxygen-icon-theme", "5:5.103.0-1"),
    Deb("papirus-icon-theme", "20230104-2"),
    Deb("tango-icon-theme", "0.8.90-11"),
)
# theme folder (under usr/share/icons) → the package that has it
ICON_THEMES = {
    "Adwaita": "adwaita-icon-theme",
    "breeze": "breeze-icon-theme",
    "elementary": "elementary-icon-theme",
    "Faba": "faba-icon-theme",
    "gnome": "gnome-icon-theme",
    "nuoveXT2": "lxde-icon-theme",
    "Numix": "numix-icon-theme",
    "oxygen": "oxygen-icon-theme",
    "Papirus": "papirus-icon-theme",
    "Tango": "tango-icon-theme",
}
ICON_TEST_THEMES = ("oxygen", "elementary")
# concept → freedesktop icon names that draw it (the naming spec's names, plus common variants)
ICON_CONCEPTS: dict[str, tuple[str, ...]] = {
    "archive": ("package-x-generic", "application-x-archive", "application-zip", "application-x-compressed-tar"),
    "battery": ("battery", "battery-full", "battery-good", "battery-low", "battery-caution"),
    "browser": ("web-browser", "internet-web-browser", "applications-internet"),
    "calendar": ("x-office-calendar", "office-calendar", "appointment-new", "calendar", "evolution-calendar"),
    "camera": ("camera-photo", "camera-web", "camera"),
    "computer": ("computer", "system", "user-desktop"),
    "document": ("text-x-generic", "x-office-document", "text-plain", "document-new"),
    "error": ("dialog-error", "process-stop"),
    "folder": ("folder", "inode-directory", "folder-open"),
    "harddisk": ("drive-harddisk", "drive-harddisk-system", "drive-removable-media"),
    "help": ("help-browser", "help-contents", "help-about", "dialog-question"),
    "home": ("user-home", "go-home", "folder-home"),
    "image-file": ("image-x-generic", "image-png", "image-jpeg"),
    "keyboard": ("input-keyboard", "preferences-desktop-keyboard"),
    "lock": ("system-lock-screen", "changes-prevent", "emblem-readonly", "object-locked"),
    "mail": ("mail-message-new", "internet-mail", "mail-send", "mail-unread", "mail-read", "emblem-mail",
             "mail-send-receive"),
    "mouse": ("input-mouse", "preferences-desktop-peripherals"),
    "music-file": ("audio-x-generic", "audio-mpeg", "audio-x-mpeg"),
    "network": ("network-wired", "network-workgroup", "network-server", "network-transmit-receive", "network-idle"),
    "optical-disc": ("media-optical", "drive-optical", "media-optical-cd", "media-cdrom"),
    "phone": ("phone", "smartphone", "call-start", "pda"),
    "printer": ("printer", "document-print", "printer-network", "printer-printing"),
    "save": ("document-save", "document-save-as", "media-floppy"),
    "settings": ("preferences-system", "preferences-other", "preferences-desktop", "systemsettings"),
    "speaker": ("audio-speakers", "audio-volume-high", "audio-card", "multimedia-volume-control"),
    "star": ("starred", "emblem-favorite", "bookmark-new", "rating"),
    "terminal": ("utilities-terminal", "terminal", "gnome-terminal", "xterm"),
    "trash": ("user-trash", "user-trash-full", "trashcan_empty", "trashcan_full"),
    "user": ("avatar-default", "system-users", "user-info", "stock_person", "preferences-desktop-personal"),
    "warning": ("dialog-warning", "emblem-important"),
}
ICON_SIZE = 96  # output images are ICON_SIZE x ICON_SIZE
ICON_MIN_SOURCE = 32  # smaller rasters are simplified glyphs in most themes, not the theme's design
ICON_MAX_PER_THEME_CLASS = 10  # no theme dominates a class
_SIZE_DIR = re.compile(r"^(\d+)(?:x\d+)?(?:@(\d)x)?$")
_BACKGROUNDS = ((255, 255, 255), (238, 238, 236), (200, 200, 200), (128, 128, 128), (46, 52, 54))


def _nominal_size(relative: Path) -> int | None:
    """The pixel size a theme file is drawn for, from its folders (scalable counts as large)."""
    for part in relative.parts[:-1]:
        if part.startswith("scalable"):
            return 4096
        match = _SIZE_DIR.match(part)
        if match:
            return int(match.group(1)) * int(match.group(2) or 1)
    return None


def _icon_sources(theme_root: Path, theme: str) -> dict[str, list[tuple[str, Path, int]]]:
    """concept → [(sha256 of the file, path, nominal size)], distinct files only, capped per class."""
    wanted = {name: concept for concept, names in ICON_CONCEPTS.items() for name in names}
    found: dict[str, dict[str, tuple[Path, int]]] = collections.defaultdict(dict)
    for folder, _dirs, files in sorted(os.walk(theme_root)):
        if "symbolic" in folder:
            continue
        for file in sorted(files):
            stem, ext = os.path.splitext(file)
            if ext not in (".png", ".svg") or stem not in wanted:
                continue
            path = Path(folder) / file
            size = _nominal_size(path.relative_to(theme_root))
            if size is None or size < ICON_MIN_SOURCE or not path.resolve().is_file():
                continue
            digest = hashlib.sha256(path.resolve().read_bytes()).hexdigest()
            found[wanted[stem]].setdefault(digest, (path, size))
    chosen: dict[str, list[tuple[str, Path, int]]] = {}
    for concept, distinct in found.items():
        ordered = sorted(distinct.items(), key=lambda kv: unit_hash("icons", theme, concept, kv[0]))
        chosen[concept] = [(digest, path, size) for digest, (path, size) in ordered[:ICON_MAX_PER_THEME_CLASS]]
    return chosen


def _render_icon(path: Path, size: int) -> Image.Image:
    """The icon file as an RGBA image of `size` x `size` px (SVG rendered by cairosvg; a raster
    resized, its aspect ratio kept, centred on a transparent square)."""
    from PIL import Image

    if path.suffix == ".svg":
        import cairosvg

        png = cairosvg.svg2png(bytestring=path.resolve().read_bytes(), output_width=size, output_height=size)
        with Image.open(io.BytesIO(png)) as opened:
            image = opened.convert("RGBA")
    else:
        with Image.open(path.resolve()) as opened:
            image = opened.convert("RGBA")
    if image.size != (size, size):
        scale = size / max(image.size)
        resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                               Image.Resampling.LANCZOS)
        image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        image.alpha_composite(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return image


def _compose_icon(path: Path, key: str) -> Image.Image:
    """The icon at 58–88% of the canvas, at a random place, over one of five plain backgrounds."""
    from PIL import Image

    rng = rng_for("icon-layout", key)
    scale = int(ICON_SIZE * rng.uniform(0.58, 0.88))
    icon = _render_icon(path, scale)
    background = _BACKGROUNDS[int(rng.integers(len(_BACKGROUNDS)))]
    canvas = Image.new("RGBA", (ICON_SIZE, ICON_SIZE), (*background, 255))
    x, y = (int(rng.integers(0, ICON_SIZE - scale + 1)) for _ in range(2))
    canvas.alpha_composite(icon, (x, y))
    return canvas.convert("RGB")


def build_icons(root: Path) -> Path:
    folder = root / "icons"
    params: dict[str, object] = {
        "debs": [f"{d.name}={d.version}" for d in ICON_DEBS], "test": list(ICON_TEST_THEMES),
        "concepts": ICON_CONCEPTS, "size": ICON_SIZE, "min_source": ICON_MIN_SOURCE,
        "cap": ICON_MAX_PER_THEME_CLASS, "val": VAL_FRACTION, "version": 3,
    }
    if is_built(folder, params):
        print(f"icons: already built ({folder / 'manifest.csv'})")
        return folder / "manifest.csv"
    try:
        import cairosvg  # noqa: F401
    except ImportError as exc:
        raise SystemExit("the icon set renders SVG icons with cairosvg: pip install cairosvg") from exc
    roots = fetch_debs(root, ICON_DEBS)
    rows: list[dict[str, str]] = []
    for theme, package in sorted(ICON_THEMES.items()):
        sources = _icon_sources(roots[package] / "usr/share/icons" / theme, theme)
        for concept in sorted(sources):
            out_dir = folder / "images" / theme / concept
            out_dir.mkdir(parents=True, exist_ok=True)
            for digest, path, size in sources[concept]:
                key = f"{theme}/{concept}/{digest[:12]}"
                target = out_dir / f"{path.stem}-{digest[:12]}.png"
                if not target.is_file():
                    image = _compose_icon(path, key)
                    tmp = target.with_suffix(".tmp.png")
                    image.save(tmp)
                    os.replace(tmp, target)
                rows.append({
                    "path": str(target.relative_to(folder)), "label": concept, "group": theme,
                    "split": "test" if theme in ICON_TEST_THEMES else "train",
                    "icon_name": path.stem, "source_size": "scalable" if size == 4096 else str(size),
                    "source_file": str(path.relative_to(roots[package])), "package": package,
                    "drawing": f"{theme}/{path.stem}",
                })
    missing = [(t, c) for t in ICON_TEST_THEMES for c in ICON_CONCEPTS
               if not any(r["group"] == t and r["label"] == c for r in rows)]
    if missing:
        print(f"icons: note, test themes lack {len(missing)} (theme, class) pairs: {missing}")
    # val by drawing: the sizes of one icon (often the same design resized) stay on one side
    assign_val(rows, "drawing", "icons-val")
    fields = ("path", "label", "group", "split", "icon_name", "source_size", "package", "source_file")
    return write_manifest(folder, rows, fields, params)


# --------------------------------------------------------------------------------------------
# debtext: Debian package topics, long descriptions → one-line synopses of unseen packages
# --------------------------------------------------------------------------------------------

TEXT_SECTIONS = ("admin", "database", "editors", "electronics", "games", "graphics", "hamradio", "mail", "math",
                 "net", "science", "sound", "text", "vcs", "video", "web")
TEXT_MAX_PER_CLASS = 150
TEXT_TEST_FRACTION = 0.35
TEXT_MIN_LONG_WORDS = 15
# names of packages that are parts of something else (files, debug symbols, translations …)
_PART = re.compile(r"(-dev|-doc|-docs|-dbg|-dbgsym|-data|-common|-examples|-tests?|-plugins?|-l10n|-locales?|"
                   r"-bin|-utils|-tools|-extra|-theme|-themes|-dbgsym)$|^lib")
# packages whose description says nothing about what they do
_PLACEHOLDER = re.compile(r"transitional|dummy package|metapackage|meta-package", re.I)
_DIST = "bookworm"


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """RFC 822 stanzas of a Debian index (continuation lines kept, joined by newlines)."""
    block: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line:
            if block:
                yield block
            block, key = {}, ""
        elif line[0] in " \t":
            block[key] += "\n" + line
        else:
            key, _, value = line.partition(":")
            block[key] = value.strip()
    if block:
        yield block


def _apt_indices(root: Path) -> tuple[str, str, dict[str, str]]:
    """bookworm main's Packages and Translation-en, fetched once by `apt-get update` into a private
    folder (the system's apt state is not touched), then kept decompressed under root/apt."""
    apt = root / "apt"
    packages, translation, release = apt / "Packages", apt / "Translation-en", apt / "Release.json"
    if not (packages.is_file() and translation.is_file() and release.is_file()):
        lists = apt / "lists"
        (lists / "partial").mkdir(parents=True, exist_ok=True)
        sources = apt / "sources.list"
        sources.write_text(f"deb http://deb.debian.org/debian {_DIST} main\n")
        options = ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Etc::SourceList={sources}",
                   "-o", "Dir::Etc::SourceParts=/nonexistent", "-o", "Acquire::Languages=en",
                   "-o", "APT::Architecture=amd64", "-o", "APT::Architectures=amd64"]
        result = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"apt-get update (private lists in {lists}) failed: {result.stderr.strip()[-400:]}")
        helper = "/usr/lib/apt/apt-helper"
        wanted = ((packages, "*_main_binary-amd64_Packages*"), (translation, "*_main_i18n_Translation-en*"))
        for target, pattern in wanted:
            found = sorted(p for p in lists.glob(pattern) if not p.name.endswith(".diff"))
            if not found:
                raise SystemExit(f"apt-get update left no {pattern} in {lists}")
            data = subprocess.run([helper, "cat-file", str(found[0])], capture_output=True, check=True).stdout
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        inrelease = next(iter(sorted(lists.glob("*InRelease"))), None)
        date = ""
        if inrelease is not None:
            match = re.search(r"^Date: (.*)$", inrelease.read_text(errors="replace"), re.M)
            date = match.group(1) if match else ""
        meta = {"dist": _DIST, "date": date,
                "packages_sha256": hashlib.sha256(packages.read_bytes()).hexdigest(),
                "translation_sha256": hashlib.sha256(translation.read_bytes()).hexdigest()}
        release.write_text(json.dumps(meta, indent=2) + "\n")
    meta = json.loads(release.read_text())
    return packages.read_text(encoding="utf-8"), translation.read_text(encoding="utf-8"), meta


def _clean_long(text: str) -> str:
    """A long description as plain text: paragraph dots dropped, lines joined, bullets kept as words."""
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\s+", " ", " ".join("" if line == "." else line for line in lines)).strip()


def build_debtext(root: Path) -> Path:
    folder = root / "debtext"
    params: dict[str, object] = {
        "dist": _DIST, "sections": list(TEXT_SECTIONS), "cap": TEXT_MAX_PER_CLASS, "test": TEXT_TEST_FRACTION,
        "min_words": TEXT_MIN_LONG_WORDS, "part": _PART.pattern, "placeholder": _PLACEHOLDER.pattern,
        "val": VAL_FRACTION, "version": 2,
    }
    if is_built(folder, params):
        print(f"debtext: already built ({folder / 'manifest.csv'})")
        return folder / "manifest.csv"
    packages_text, translation_text, release = _apt_indices(root)
    descriptions = {s["Description-md5"]: s["Description-en"] for s in _stanzas(translation_text)
                    if "Description-md5" in s and "Description-en" in s}
    by_source: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for stanza in _stanzas(packages_text):
        name = stanza.get("Package", "")
        if not name or _PART.search(name):
            continue
        source = stanza.get("Source", name).split(" ")[0]
        by_source[source].append(stanza)
    candidates: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for source, stanzas in sorted(by_source.items()):
        # the binary named like its source, else the shortest name: the package people know
        stanza = min(stanzas, key=lambda s: (s["Package"] != source, len(s["Package"]), s["Package"]))
        section = stanza.get("Section", "").split("/")[-1]
        full = descriptions.get(stanza.get("Description-md5", ""))
        if section not in TEXT_SECTIONS or full is None:
            continue
        synopsis, _, long = full.partition("\n")
        long = _clean_long(long)
        if len(long.split()) < TEXT_MIN_LONG_WORDS or len(synopsis.split()) < 2 or _PLACEHOLDER.search(full):
            continue
        candidates[section].append({"source": source, "package": stanza["Package"], "synopsis": synopsis.strip(),
                                    "long": long})
    # one copy of a text: sources that share a description (forks, versions) keep the first by hash
    seen: set[str] = set()
    for section in TEXT_SECTIONS:
        unique = []
        for member in sorted(candidates[section], key=lambda c: unit_hash("debtext", section, c["source"])):
            if member["long"].lower() in seen or member["synopsis"].lower() in seen:
                continue
            seen.update((member["long"].lower(), member["synopsis"].lower()))
            unique.append(member)
        candidates[section] = unique
    rows: list[dict[str, str]] = []
    for section in TEXT_SECTIONS:
        members = sorted(candidates[section], key=lambda c: unit_hash("debtext", section, c["source"]))
        members = members[:TEXT_MAX_PER_CLASS]
        n_test = round(TEXT_TEST_FRACTION * len(members))
        for i, member in enumerate(members):
            test = i < n_test
            rows.append({"text": member["synopsis"] if test else member["long"], "label": section,
                         "group": "synopsis" if test else "long-description", "split": "test" if test else "train",
                         "package": member["package"], "source": member["source"]})
    assign_val(rows, "source", "debtext-val")
    return write_manifest(folder, rows, ("text", "label", "group", "split", "package", "source"), params, release)


# --------------------------------------------------------------------------------------------
# speech: spoken words from synthesizer voices; test speakers never heard in training
# --------------------------------------------------------------------------------------------

SPEECH_DEBS = (
    Deb("flite", "2.2-5"),
    Deb("libflite1", "2.2-5"),
    Deb("festival", "1:2.5.0-9"),
    Deb("libestools2.5", "1:2.5.0-13"),
    Deb("festlex-cmu", "2.4-2"),
    Deb("festlex-poslex", "2.4-1"),
    Deb("festvox-kallpc16k", "2.4-1"),
    Deb("festvox-kdlpc16k", "1.4.0-6.1"),
    Deb("festvox-us-slt-hts", "0.2010.10.25-4"),
)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# voice → (synthesizer, its voice name, speaker)
VOICES = {
    "flite-kal": ("flite", "kal", "kal"),
    "flite-kal16": ("flite", "kal16", "kal"),
    "flite-awb": ("flite", "awb", "awb"),
    "flite-rms": ("flite", "rms", "rms"),
    "flite-slt": ("flite", "slt", "slt"),
    "festival-kal": ("festival", "kal_diphone", "kal"),
    "festival-ked": ("festival", "ked_diphone", "ked"),
    "festival-slt-hts": ("festival", "cmu_us_slt_arctic_hts", "slt"),
}
SPEECH_TEST_SPEAKERS = ("awb", "ked")
STRETCHES = (0.85, 1.0, 1.2)  # the synthesizer's own duration stretch (speaking rate)
SEMITONES = (-2, 0, 2)  # pitch shift (librosa), tempo kept
TAPE = {"slow": (47, 50), "fast": (53, 50)}  # resampling: pitch and tempo together, -6% / +6%
SAMPLE_RATE = 16000


def _synthesize_flite(roots: dict[str, Path], voice: str, jobs: list[tuple[str, Path]], stretch: float) -> None:
    env = {**os.environ, "LD_LIBRARY_PATH": str(roots["libflite1"] / "usr/lib/x86_64-linux-gnu")}
    binary = roots["flite"] / "usr/bin/flite"
    for text, out in jobs:
        subprocess.run([str(binary), "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", text,
                        "-o", str(out)], env=env, check=True, capture_output=True)


def _festival_share(roots: dict[str, Path], root: Path) -> Path:
    """festival reads one data folder: the unpacked packages' /usr/share/festival trees, merged once."""
    share = root / "festival-share"
    if not (share / ".complete").is_file():
        for package in ("festival", "festlex-cmu", "festlex-poslex", "festvox-kallpc16k", "festvox-kdlpc16k",
                        "festvox-us-slt-hts"):
            shutil.copytree(roots[package] / "usr/share/festival", share, dirs_exist_ok=True, symlinks=True)
        (share / ".complete").write_text("ok\n")
    return share


def _synthesize_festival(roots: dict[str, Path], voice: str, jobs: list[tuple[str, Path]], stretch: float) -> None:
    """One festival process per voice and rate: a Scheme script that saves every utterance."""
    share = _festival_share(roots, roots["festival"].parent.parent)
    lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch})"]
    if voice.endswith("_hts"):  # HTS voices ignore Duration_Stretch; their engine takes a speed rate
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {1 / stretch:.4f}))))')
    for text, out in jobs:
        quoted = text.replace('"', '\\"')
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{out}" \'riff)')
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        libs = [roots["libestools2.5"] / "usr/lib/x86_64-linux-gnu", roots["festival"] / "usr/lib/x86_64-linux-gnu"]
        env = {**os.environ, "LD_LIBRARY_PATH": ":".join(str(p) for p in libs)}
        result = subprocess.run([str(roots["festival"] / "usr/bin/festival"), "--datadir", str(share), "-b", f.name],
                                env=env, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    missing = [out for _, out in jobs if not out.is_file()]
    if result.returncode != 0 or missing:
        raise SystemExit(f"festival ({voice}) made {len(jobs) - len(missing)} of {len(jobs)} clips "
                         f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-600:]}")


def _finish_clip(raw: Path, target: Path, semitones: int, tape: tuple[int, int], key: str) -> None:
    """16 kHz mono: pitch shift, tape-speed shift, 0–0.25 s of silence each side, noise at 20–40 dB SNR."""
    import soundfile as sf
    from scipy.signal import resample_poly

    wave, rate = sf.read(raw, dtype="float64", always_2d=True)
    wave = wave.mean(axis=1)
    if rate != SAMPLE_RATE:
        wave = resample_poly(wave, SAMPLE_RATE, rate)
    if semitones:
        import librosa

        wave = librosa.effects.pitch_shift(wave, sr=SAMPLE_RATE, n_steps=semitones)
    up, down = tape  # played back faster (53/50) or slower (47/50) than it was recorded
    wave = resample_poly(wave, down, up)
    rng = rng_for("speech-finish", key)
    pad = [np.zeros(int(rng.uniform(0.0, 0.25) * SAMPLE_RATE)) for _ in range(2)]
    wave = np.concatenate([pad[0], wave, pad[1]])
    peak = float(np.max(np.abs(wave))) or 1.0
    wave = wave / peak * rng.uniform(0.3, 0.9)
    voiced = wave[np.abs(wave) > 0.02]
    power = float(np.mean(voiced**2)) if voiced.size else 1e-4
    snr_db = rng.uniform(20.0, 40.0)
    wave = wave + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), wave.shape)
    tmp = target.with_suffix(".tmp.wav")
    sf.write(tmp, np.clip(wave, -1.0, 1.0).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, target)


def build_speech(root: Path) -> Path:
    folder = root / "speech"
    params: dict[str, object] = {
        "debs": [f"{d.name}={d.version}" for d in SPEECH_DEBS], "words": list(WORDS), "voices": VOICES,
        "test": list(SPEECH_TEST_SPEAKERS), "stretches": list(STRETCHES), "semitones": list(SEMITONES),
        "tape": TAPE, "rate": SAMPLE_RATE, "val": VAL_FRACTION, "version": 2,
    }
    if is_built(folder, params):
        print(f"speech: already built ({folder / 'manifest.csv'})")
        return folder / "manifest.csv"
    roots = fetch_debs(root, SPEECH_DEBS)
    raw_dir = root / "speech-raw"
    rows: list[dict[str, str]] = []
    for voice, (synth, name, speaker) in VOICES.items():
        (raw_dir / voice).mkdir(parents=True, exist_ok=True)
        for stretch in STRETCHES:
            jobs = [(word, raw_dir / voice / f"{word}-r{stretch:.2f}.wav") for word in WORDS]
            jobs = [(text, out) for text, out in jobs if not out.is_file()]
            if jobs:
                tmp_jobs = [(text, out.with_suffix(".part.wav")) for text, out in jobs]
                (_synthesize_flite if synth == "flite" else _synthesize_festival)(roots, name, tmp_jobs, stretch)
                for (_, tmp), (_, out) in zip(tmp_jobs, jobs, strict=True):
                    os.replace(tmp, out)
        for word in WORDS:
            out_dir = folder / "clips" / voice / word
            out_dir.mkdir(parents=True, exist_ok=True)
            for stretch in STRETCHES:
                raw = raw_dir / voice / f"{word}-r{stretch:.2f}.wav"
                for semitones in SEMITONES:
                    for tape_name, tape in TAPE.items():
                        stem = f"{word}-r{stretch:.2f}-p{semitones:+d}-{tape_name}"
                        target = out_dir / f"{stem}.wav"
                        if not target.is_file():
                            _finish_clip(raw, target, semitones, tape, f"{voice}/{stem}")
                        rows.append({"path": str(target.relative_to(folder)), "label": word, "group": speaker,
                                     "split": "test" if speaker in SPEECH_TEST_SPEAKERS else "train",
                                     "voice": voice, "synthesizer": synth, "key": f"{voice}/{stem}"})
    assign_val(rows, "key", "speech-val")
    return write_manifest(folder, rows, ("path", "label", "group", "split", "voice", "synthesizer"), params)


BUILDERS = {"icons": build_icons, "debtext": build_debtext, "speech": build_speech}


def check_shift(name: str, rows: list[dict[str, str]]) -> None:
    """The promises of a set: three non-empty splits, no group (nor debtext source package) on both
    sides of the train/test line, val inside the training groups, every test class trained on."""
    splits = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    problems = [f"split {s} is empty" for s, members in splits.items() if not members]
    for column in ("group", "source"):
        if column not in rows[0]:
            continue
        seen = {s: {r[column] for r in members} for s, members in splits.items()}
        if seen["test"] & (seen["train"] | seen["val"]):
            problems.append(f"{column} on both sides of train/test: {sorted(seen['test'] & seen['train'])[:5]}")
    if {r["group"] for r in splits["val"]} - {r["group"] for r in splits["train"]}:
        problems.append("val has groups that train lacks")
    untrained = {r["label"] for r in splits["test"]} - {r["label"] for r in splits["train"]}
    if untrained:
        problems.append(f"test classes never trained on: {sorted(untrained)}")
    if problems:
        raise SystemExit(f"{name}: " + "; ".join(problems))


def build(names: Sequence[str], root: Path = DATA_ROOT) -> dict[str, Path]:
    """Build (or find built) each named set; returns name → its manifest."""
    manifests = {}
    for name in names:
        manifests[name] = BUILDERS[name](root)
        rows = read_manifest(manifests[name])
        check_shift(name, rows)
        print_counts(name, rows)
    return manifests


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated, of: {', '.join(SETS)} (or image, text, audio)")
    parser.add_argument("--root", type=Path, default=DATA_ROOT, help="data folder (default benchmarks/.data)")
    args = parser.parse_args(argv)
    aliases = {"image": "icons", "text": "debtext", "audio": "speech"}
    names = [aliases.get(s.strip(), s.strip()) for s in args.sets.split(",") if s.strip()]
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        parser.error(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(SETS)}")
    build(names, args.root)


if __name__ == "__main__":
    main()
