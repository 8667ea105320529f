"""A trained model on disk: a folder with `transferkit.json`, `model.safetensors`, `README.md`.

No pickle anywhere: loading a bundle reads JSON and tensors and never executes code from it.
The backbone is stored by reference (name + weights sha256 + preprocessing); the backbone's own
weights are written only when they were trained (fine-tuning), so a probe bundle is small.

**What transferkit owns.** A folder is recognised as transferkit's by a format marker and version
inside the JSON files transferkit writes, never by a file name: `transferkit.json` must say
`"format": "transferkit.bundle"`, a fine-tuning run's `run.json` `"format": "transferkit.run"`
(an earlier run's `"kind": "transferkit.run"` is read too). A bundle's manifest lists the files
transferkit wrote in it (`"files"`); a bundle written before that list existed owns the three
names every bundle has. A run owns the fixed set of files the fine-tuning engine writes
(`RUN_FILES`: its checkpoints, logs and temporary files), a list defined here and never read
from the folder, so that a planted `run.json` cannot claim anything. `--overwrite` replaces only
owned files: a folder holding anything else (a user's `notes.txt`, a `src/` folder, a link) is
refused, naming the first such entry, and nothing is deleted.

**Atomic writes.** A bundle is assembled in a temporary sibling folder. A new bundle is renamed
into place; an old one is swapped with the new in one step (Linux `renameat2(RENAME_EXCHANGE)`;
elsewhere two renames), then the old files, all owned, are deleted. A failed save (disk full, say)
leaves the old bundle as it was and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import glob
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import torch

from transferkit.errors import BundleError
from transferkit.jsontypes import JSONObject

FORMAT = "transferkit.bundle"
FORMAT_VERSION = 1
MANIFEST = "transferkit.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
#: what every bundle holds; the files an old bundle (no "files" list in its manifest) owns
BUNDLE_FILES: tuple[str, ...] = (CARD, WEIGHTS, MANIFEST)

RUN_FILE = "run.json"
RUN_FORMAT = "transferkit.run"
RUN_FORMAT_VERSION = 1
#: what a fine-tuning run folder holds, as `fnmatch` patterns of '/'-separated relative paths:
#: the run manifest, Lightning's checkpoints and logs as the engine configures them, the LR
#: finder's scratch checkpoint, and the temporary files of atomic writes.
RUN_FILES: tuple[str, ...] = (
    RUN_FILE,
    ".run.*.tmp",
    "checkpoints/last.ckpt",
    "checkpoints/best.ckpt",
    "checkpoints/.*.tmp",
    "logs/metrics.csv",
    "logs/hparams.yaml",
    "logs/tensorboard/hparams.yaml",
    "logs/tensorboard/events.out.tfevents.*",
    "lr_find/.lr_find_*.ckpt",
    "lr_find/.*.tmp",
)


# -- recognising what transferkit wrote --------------------------------------------------------


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _bundle_manifest(folder: Path) -> JSONObject | None:
    """The folder's `transferkit.json` when it carries transferkit's bundle marker, else None."""
    path = folder / MANIFEST
    if not path.is_file() or path.is_symlink():
        return None
    manifest = _read_json(path)
    if isinstance(manifest, dict) and manifest.get("format") == FORMAT:
        return manifest
    return None


def _run_manifest(folder: Path) -> JSONObject | None:
    """The folder's `run.json` when it carries transferkit's run marker, else None."""
    path = folder / RUN_FILE
    if not path.is_file() or path.is_symlink():
        return None
    info = _read_json(path)
    if isinstance(info, dict) and (info.get("format") == RUN_FORMAT or info.get("kind") == RUN_FORMAT):
        return info
    return None


def is_bundle(path: str | Path) -> bool:
    """True when `path` holds a `transferkit.json` with transferkit's bundle marker."""
    return _bundle_manifest(Path(path)) is not None


def is_run(path: str | Path) -> bool:
    """True when `path` holds a `run.json` with transferkit's run marker."""
    return _run_manifest(Path(path)) is not None


def _safe_name(name: object) -> str | None:
    """A manifest's file entry as a relative '/'-path inside the bundle, or None if it is not one."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts)


def listed_files(manifest: JSONObject) -> list[str]:
    """The files a bundle manifest says transferkit wrote (an old manifest: the standard three)."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return list(BUNDLE_FILES)
    names = {name for name in map(_safe_name, files) if name is not None}
    return sorted(names | {MANIFEST})


class _Owned:
    """Which paths inside a folder transferkit wrote: exact names and patterns."""

    def __init__(self, exact: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.exact = set(exact)
        self.patterns = tuple(patterns)
        every = [*self.exact, *self.patterns]
        self.dirs = {str(parent) for name in every for parent in PurePosixPath(name).parents if str(parent) != "."}

    def __contains__(self, rel: str) -> bool:
        return rel in self.exact or any(fnmatch.fnmatchcase(rel, p) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.exact or self.patterns)


#: the generator tag in the head of every HTML report transferkit writes (`transferkit.report`)
REPORT_GENERATOR = "transferkit report"


def is_report(path: Path) -> bool:
    """True when `path` is an HTML report transferkit wrote (its head carries the generator tag):
    one beside a bundle belongs to that bundle, and is replaced or removed with it."""
    if path.suffix.lower() != ".html" or path.is_symlink() or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return f'<meta name="generator" content="{REPORT_GENERATOR}">' in head


def _owned(folder: Path) -> _Owned | None:
    """What transferkit owns in `folder`, or None when nothing there carries its marker."""
    manifest, run = _bundle_manifest(folder), _run_manifest(folder)
    if manifest is None and run is None:
        return None
    exact = listed_files(manifest) if manifest is not None else []
    return _Owned(exact, RUN_FILES if run is not None else ())


def _entries(folder: Path) -> list[tuple[str, Path, bool]]:
    """Every entry below `folder` as (relative '/'-path, path, is_dir), in sorted order; links not followed."""
    found: list[tuple[str, Path, bool]] = []

    def walk(current: Path, prefix: str) -> None:
        try:
            children = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            raise BundleError(f"'{current}': cannot list the folder ({exc.strerror or exc})") from exc
        for entry in children:
            rel = f"{prefix}{entry.name}"
            is_dir = entry.is_dir(follow_symlinks=False)
            found.append((rel, Path(entry.path), is_dir))
            if is_dir:
                walk(Path(entry.path), rel + "/")

    walk(folder, "")
    return found


def foreign_entries(folder: str | Path) -> list[str]:
    """Entries of `folder` transferkit did not write (relative paths, sorted); all of them if it
    carries no transferkit marker. A folder is foreign only when empty and not one transferkit makes."""
    p = Path(folder)
    owned = _owned(p) or _Owned()
    foreign: list[str] = []
    entries = _entries(p)
    for i, (rel, _, is_dir) in enumerate(entries):
        if is_dir:  # entries are in walk order: a folder's first entry comes right after it
            holds_something = i + 1 < len(entries) and entries[i + 1][0].startswith(rel + "/")
            if rel not in owned.dirs and not holds_something:
                foreign.append(rel + "/")
        elif rel not in owned and not is_report(p / rel):
            foreign.append(rel)
    return foreign


def check_writable(out: str | Path, *, overwrite: bool = False) -> None:
    """Refuse an `--out` that holds anything transferkit did not write, or a model without `overwrite`.

    A new or empty folder is fine; a bundle or run transferkit wrote is fine with `overwrite`, as
    long as it holds nothing else. The error names the first entry that is not transferkit's.
    """
    p = Path(out)
    if p.is_symlink() and not p.exists():
        raise BundleError(f"--out '{p}' is a broken link; give a folder path for the trained model")
    if p.exists() and not p.is_dir():
        raise BundleError(f"--out '{p}' is a file; give a folder path for the trained model")
    if not p.is_dir():
        return
    try:
        empty = not any(p.iterdir())
    except OSError as exc:
        raise BundleError(f"--out '{p}': cannot list the folder ({exc.strerror or exc})") from exc
    if empty:
        return
    owned = _owned(p)
    if owned is None:
        first = min(entry.name for entry in p.iterdir())
        raise BundleError(
            f"--out '{p}' is a non-empty folder that is not a transferkit bundle (it holds "
            f"'{first}', and no {MANIFEST} or {RUN_FILE} that transferkit wrote); "
            "refusing to write into it. Choose a new or empty folder."
        )
    what = "a trained model" if is_bundle(p) else "a fine-tuning run"
    if not overwrite:
        raise BundleError(
            f"--out '{p}' already holds {what}. Pass --overwrite to replace it, or choose another folder."
        )
    foreign = foreign_entries(p)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise BundleError(
            f"--out '{p}' holds {what}, but also '{foreign[0]}'{more}, which transferkit did not write; "
            "--overwrite replaces only transferkit's own files and will not delete it. Move it out of "
            "the folder, or choose another folder."
        )


def remove_owned(folder: str | Path, *, run_only: bool = False) -> list[str]:
    """Delete the files transferkit wrote in `folder` (only the run's with `run_only`), and the
    folders it made that are then empty. Returns what was deleted. Never touches anything else."""
    p = Path(folder)
    if run_only:
        owned: _Owned | None = _Owned((), RUN_FILES) if is_run(p) else None
    else:
        owned = _owned(p)
    if owned is None or not p.is_dir():
        return []
    removed: list[str] = []
    entries = _entries(p)
    markers = (MANIFEST, RUN_FILE)  # deleted last: a kill midway leaves a folder still recognised
    for rel, path, is_dir in entries:
        if not is_dir and not path.is_symlink() and (rel in owned or is_report(path)) and rel not in markers:
            path.unlink(missing_ok=True)
            removed.append(rel)
    for rel in markers:
        if rel in owned and (p / rel).is_file() and not (p / rel).is_symlink():
            (p / rel).unlink()
            removed.append(rel)
    for rel, path, is_dir in reversed(entries):
        if is_dir and rel in owned.dirs:
            with contextlib.suppress(OSError):  # not empty: it holds something that is not ours
                path.rmdir()
    return removed


# -- writing -----------------------------------------------------------------------------------


def save_bundle(
    out: str | Path,
    manifest: JSONObject,
    tensors: dict[str, torch.Tensor],
    card: str,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically; `manifest` gets the format, version and file-list fields added.

    With `overwrite`, an existing bundle or run at `out` is replaced, provided it holds only files
    transferkit wrote (`check_writable`). If writing fails (a full disk, say), whatever was at
    `out` is left as it was, and the `BundleError` says so.
    """
    from safetensors.torch import save

    target = Path(out)
    if target.is_symlink() and target.is_dir():  # write into the folder the link points at, keep the link
        target = Path(os.path.realpath(target))
    check_writable(target, overwrite=overwrite)
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **manifest,
        "files": list(BUNDLE_FILES),
        "versions": {
            "transferkit": _version(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    existed = target.exists()
    tmp: Path | None = None
    # serialised in memory first: what the save needs is known, and a full disk is an OSError with its errno
    # (safetensors' own file writer reports it as a SafetensorError without one)
    files = {
        WEIGHTS: save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}),
        CARD: card.encode("utf-8"),
        MANIFEST: (json.dumps(full, indent=2, sort_keys=False) + "\n").encode("utf-8"),
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        if target.exists():
            check_writable(target, overwrite=True)  # again, just before replacing: nothing new in it
            _replace_folder(tmp, target)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        kept = f"the model already at '{target}' is intact" if existed else "nothing was saved"
        full_disk = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        needed = _size(sum(map(len, files.values())))
        reason = (f"the disk is full (the model needs {needed}; {_free_space(target.parent)} free in "
                  f"'{target.parent}')") if full_disk else (exc.strerror or str(exc))
        raise BundleError(
            f"cannot save the model to '{target}': {reason}; {kept}. "
            + ("Free some space and run again." if full_disk else "Check the folder and run again.")
        ) from exc
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _free_space(folder: Path) -> str:
    try:
        return _size(shutil.disk_usage(folder).free)
    except OSError:
        return "an unknown amount"


def add_files(folder: str | Path, names: Iterable[str]) -> None:
    """Record in a bundle's manifest that transferkit wrote `names` (relative paths) into it too,
    so that `--overwrite` may replace them. The manifest is rewritten atomically."""
    p = Path(folder)
    manifest = read_manifest(p)
    extra = []
    for name in names:
        safe = _safe_name(name)
        if safe is None:
            raise BundleError(f"'{name}': not a relative path inside the bundle")
        extra.append(safe)
    manifest["files"] = sorted(set(listed_files(manifest)) | set(extra))
    write_json_atomic(p / MANIFEST, manifest)


def write_json_atomic(path: Path, data: object) -> None:
    """Write `data` as JSON to `path` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: a temporary sibling older than this (seconds) was left by a save that was killed
STALE_TMP_S = 3600.0


def _remove_stale_temporaries(target: Path) -> None:
    """Delete `.<name>.tmp-*` folders beside `target` that a killed save left (transferkit's own)."""
    import time

    now = time.time()
    for stale in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        try:
            if stale.is_dir() and not stale.is_symlink() and now - stale.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _replace_folder(new: Path, target: Path) -> None:
    """Put folder `new` at `target` and delete what was there (all of it owned, checked before)."""
    if _exchange(new, target):
        old = new  # the exchange left the old bundle where the new one was
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
    remove_owned(old)
    try:
        old.rmdir()
    except OSError:  # something appeared in it meanwhile: keep it, and say where
        import warnings

        warnings.warn(
            f"'{target}' was replaced; what it held besides transferkit's files is kept in '{old}'",
            stacklevel=3,
        )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # a filesystem without exchange: fall back to two renames
    raise OSError(code, os.strerror(code), str(b))


#: characters that mean something to Markdown inside a line (links, images, emphasis, code, tables)
_MARKDOWN_SPECIAL = frozenset("\\`*_[]|!~")


def markdown_text(value: object) -> str:
    """`value` as literal text inside a line of Markdown: one line, HTML's `<`, `>`, `&` as entities
    (no tag a model hub would render), Markdown's punctuation backslash-escaped (no link, image or
    emphasis). For anything a model card quotes from the user: labels, column names, specs."""
    import html

    text = html.escape(" ".join(str(value).split()), quote=False)
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)


def model_card(manifest: JSONObject, *, title: str, facts: list[str], unit: str, usage: str) -> str:
    """The short README.md of a bundle: what it is, what it was trained on, how well it did, how to use it.

    `facts` are the lines particular to one kind of model (strategy, columns, weights…), with what
    they quote already escaped (`markdown_text`); `unit` names what an example is ("examples",
    "rows"). The title and the labels are escaped here.
    """
    labels = [markdown_text(label) for label in manifest["labels"]]
    training = manifest.get("training", {})
    metrics = manifest.get("metrics") or {}
    lines = [
        f"# {markdown_text(title)}",
        "",
        f"- task: {manifest['task']} over {len(labels)} classes: "
        + ", ".join(labels[:20]) + (" …" if len(labels) > 20 else ""),
        *facts,
        f"- trained on {training.get('n_train')} {unit} (+{training.get('n_val')} validation), "
        f"seed {training.get('seed')}",
    ]
    if metrics.get("n"):
        lines.append(
            f"- test ({metrics['n']} {unit}): accuracy {metrics['accuracy']:.2%}, balanced accuracy "
            f"{metrics['balanced_accuracy']:.2%}, macro-F1 {metrics['macro_f1']:.3f}"
        )
    return "\n".join([*lines, "", usage, ""])


def read_manifest(path: str | Path) -> JSONObject:
    """A bundle's `transferkit.json`, with its format checked (no tensors read)."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"no trained model at '{p}'")
    if not (p / MANIFEST).is_file():
        raise BundleError(f"'{p}' is not a transferkit bundle (no {MANIFEST}); point at the folder `fit --out` made")
    try:
        manifest = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"'{p / MANIFEST}' is damaged: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(
            f"'{p / MANIFEST}' holds a JSON {type(manifest).__name__}, not a transferkit manifest "
            "(a JSON object); point at the folder `fit --out` made"
        )
    if manifest.get("format") != FORMAT:
        raise BundleError(f"'{p}' is not a transferkit bundle (format {manifest.get('format')!r})")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"'{p / MANIFEST}' is damaged: format_version {version!r} is not a number")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"'{p}' was written by a newer transferkit (bundle format {version}); "
            "upgrade transferkit to load it"
        )
    return manifest


def load_bundle(path: str | Path) -> tuple[JSONObject, dict[str, torch.Tensor]]:
    """Read a bundle's manifest and tensors, checking its format."""
    from safetensors.torch import load_file

    manifest = read_manifest(path)
    weights = Path(path) / WEIGHTS
    if not weights.is_file():
        raise BundleError(f"'{path}' has no {WEIGHTS}")
    try:
        tensors = load_file(str(weights))
    except Exception as exc:
        raise BundleError(f"'{weights}' is damaged: {exc}") from exc
    return manifest, tensors


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("transferkit")
    except Exception:
        return "unknown"
