"""The on-disk feature cache: features of each input, per backbone configuration.

**Layout.** One folder per (backbone name, weights sha256, preprocessing config, precision):

    <root>/features/<backbone>-<digest>/
        shard-<time_ns>-<digest>.safetensors   features [n, D] float32 of n inputs, and in its
                                               header: their keys, a checksum per row, the inputs
                                               that could not be read (key → reason) and theirs
        index.jsonl                            which keys and failures each shard holds

A second extraction of the same data extracts nothing.

**Keys.** A text (or a table row) is keyed by its content. A file is keyed by its resolved path,
size, modification time (ns) and a content fingerprint: sha256 over its first and last 4 KiB
(`data.fingerprint`). That costs two small reads per file whatever its size, and catches a file
replaced by another of the same size and modification time (a copy with `touch -r`, a restore):
the headers and tails of two images, clips or texts differ. A change confined to the middle of a
large file, with its size and time put back, is not seen; delete the cache folder after that.

**Integrity.** Shards are written to a temporary file and renamed into place, so a killed run
never leaves a torn shard. Each row carries a checksum (sha256 of its key and its float32 bytes,
16 hex digits) and the failures one of their own; a row read back is checked, so a shard whose
bytes changed on disk (a disk error, a stray write; its header intact) is never used: it is
reported in a warning naming it, deleted, and its inputs are extracted again. Shards written
before checksums existed are deleted the same way (with one warning) and recomputed.

**The index.** `index.jsonl` lets a lookup read only the shards holding the keys it wants (a
one-file predict reads one row of one shard), not every shard. Writers append one line per shard
after the shard is in place, under an advisory lock (`fcntl.flock`, where the OS has it). The
index is a hint, rebuildable from the shards at any time: a shard missing from it (a writer killed
between the two steps, a torn last line) is found by listing the folder and read from its own
header; a line naming a shard that no longer exists is ignored; the index is rewritten compactly
(temporary file + rename) when it has gathered such stale lines. So concurrent writers and kill -9
at any point leave a cache whose lookups are right.

**Failures to write.** `check_writable` (called by the first lookup, and by a pipeline before any
work) makes sure the folder can be written, and raises `ConfigError` with what to do if not. A
disk that fills up during extraction (ENOSPC, or any other write error) gives one warning, and
extraction goes on without writing to the cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from transferkit.errors import ConfigError
from transferkit.outputs import mark_output

if TYPE_CHECKING:  # only for annotations: reading the cache needs no torch
    from transferkit.backbones.contract import Backbone
from transferkit.data.augment import AugmentedItem
from transferkit.data.fingerprint import fingerprint

#: the shard format this module writes (in each shard's header)
SHARD_FORMAT = "transferkit.features"
SHARD_VERSION = "2"
INDEX = "index.jsonl"
#: temporary files older than this (seconds) were left by a killed writer and are removed
STALE_TMP_S = 3600.0
#: read a whole shard's tensor rather than row by row when at least this fraction of it is wanted
_WHOLE_SHARD = 0.25


def default_cache_dir() -> Path:
    """`$TRANSFERKIT_CACHE`, else `$XDG_CACHE_HOME/transferkit`, else `~/.cache/transferkit`. Exported
    graphs go under its `engines/`, or `$TRANSFERKIT_ENGINES` (`engines.graphs.engines_dir`)."""
    env = os.environ.get("TRANSFERKIT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "transferkit"


def resolve_cache(cache: FeatureCache | str | Path | bool | None) -> FeatureCache | None:
    """The cache a `cache_dir=` argument means: False → none, None/True → the default folder,
    a folder → that folder, a FeatureCache → itself."""
    if cache is False:
        return None
    if isinstance(cache, FeatureCache):
        return cache
    return FeatureCache(default_cache_dir() if cache is None or cache is True else cache)


def item_key(item: object, modality: str) -> str:
    """Stable identity of one input: path + size + mtime + content fingerprint for files (see the
    module docstring), content for texts and rows; "" for in-memory objects (not cached). An
    augmented view (`data.augment.AugmentedItem`) is keyed by its source's key and the view."""
    if isinstance(item, AugmentedItem):
        base = item_key(item.source, modality)
        return hashlib.sha256(f"{base}|{item.token()}".encode()).hexdigest() \
            if base and not base.startswith("missing:") else base
    if modality in ("image", "audio") and isinstance(item, str | Path):
        p = Path(item)
        try:
            resolved = p.resolve()
            st = resolved.stat()
        except (OSError, RuntimeError):  # RuntimeError: a link loop on older Pythons
            return "missing:" + str(p.absolute())
        try:
            content = fingerprint(resolved, st.st_size)
        except OSError as exc:  # unreadable now: keyed so that it is read again once readable
            content = f"unreadable-{exc.errno}"
        raw = f"file:{resolved}:{st.st_size}:{st.st_mtime_ns}:{content}"
    elif isinstance(item, str):
        raw = "text:" + item
    elif isinstance(item, dict):
        raw = "row:" + json.dumps(item, sort_keys=True, default=str)
    else:
        return ""  # in-memory objects (PIL images, arrays) are not cached
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def row_checksum(key: str, row: np.ndarray) -> str:
    """The checksum stored for one cached row: sha256 of its key and its float32 bytes (16 hex)."""
    data = np.ascontiguousarray(row, dtype=np.float32).tobytes()
    return hashlib.sha256(key.encode("utf-8", "surrogatepass") + b"\x00" + data).hexdigest()[:16]


def failed_checksum(failed: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(failed, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class _Entry:
    """What one shard holds, as the index (or the shard's own header) says."""

    keys: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    #: from a shard's header only (the index does not carry it)
    failed_checksum: str | None = None


class CorruptShard(Exception):
    """A shard whose bytes do not match its checksums (internal: it is reported and deleted)."""


class FeatureCache:
    """Features on disk, one folder per backbone configuration (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._checked = False
        #: set after a failed write: the rest of this run does not write to the cache
        self.write_error: str | None = None

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def folder(self, backbone: Backbone, precision: str) -> Path:
        ident = {
            "name": backbone.name,
            "weights": backbone.weights_id,
            "preprocess": backbone.preprocess_config(),
            "precision": precision,
        }
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / "features" / f"{backbone.name.replace('/', '_')}-{digest}"

    # -- writability -----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Make sure features can be written under `root`, before any extraction.

        Raises `ConfigError` saying what is wrong and what to do (another folder, or no cache).
        A full disk is not an error here: it is warned about once and the cache is not written.
        """
        if self._checked:
            return
        target = self.root / "features"
        try:
            target.mkdir(parents=True, exist_ok=True)
            mark_output(self.root, "feature cache")  # never read as data, wherever the cache sits
            fd, probe = tempfile.mkstemp(dir=target, prefix=".probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._write_failed(target, exc)
            else:
                raise ConfigError(
                    f"cache folder '{self.root}' cannot be written ({exc.strerror or exc}: {exc.filename or target}); "
                    "give a writable folder with --cache-dir (cache_dir=...), or run without the cache "
                    "(--no-cache, cache_dir=False)"
                ) from exc
        self._checked = True

    def _write_failed(self, folder: Path, exc: OSError) -> None:
        if self.write_error is not None:
            return
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        reason = "the disk is full" if full else (exc.strerror or str(exc))
        self.write_error = reason
        warnings.warn(
            f"feature cache '{folder}': cannot write ({reason}); extraction goes on without writing to the "
            "cache (this run's features will not be cached). " + ("Free some space, or " if full else "")
            + "pass another --cache-dir, or --no-cache.",
            RuntimeWarning,
            stacklevel=3,
        )

    # -- reading ---------------------------------------------------------------------------------

    def lookup(self, folder: Path, keys: Iterable[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """The cached vectors and failures (key → vector / reason) of `keys` in `folder`.

        Reads the index and only the shards that hold wanted keys, and of those only the wanted
        rows (or the whole tensor when most of it is wanted); every row read is checked against
        its checksum, and each shard's header against the index. A corrupt shard is reported,
        deleted, and left out (its inputs get extracted again).
        """
        self.check_writable()
        wanted = {k for k in keys if k}
        vectors: dict[str, np.ndarray] = {}
        failures: dict[str, str] = {}
        if not wanted or not folder.is_dir():
            return vectors, failures
        entries = self._entries(folder)
        holding = sorted(name for name, e in entries.items() if not wanted.isdisjoint(e.keys) or
                         not wanted.isdisjoint(e.failed))
        index_wrong = False
        for name in holding:  # in time order: a later shard's answer for a key wins
            try:
                entry, got = self._read_shard(folder / name, wanted)
            except (CorruptShard, OSError) as exc:
                self._drop(folder / name, str(exc))
                continue
            index_wrong |= entry.keys != entries[name].keys or entry.failed != entries[name].failed
            entries[name] = entry
            for key in got:
                failures.pop(key, None)
            vectors.update(got)
            failures.update({k: r for k, r in entry.failed.items() if k in wanted and k not in vectors})
        if index_wrong:
            self._rewrite_index(folder, {n: e for n, e in entries.items() if (folder / n).exists()})
        return vectors, failures

    def read(self, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Every cached vector and every cached failure in `folder` (key → vector / reason)."""
        if not folder.is_dir():
            return {}, {}
        entries = self._entries(folder)
        keys = {k for entry in entries.values() for k in [*entry.keys, *entry.failed]}
        return self.lookup(folder, keys)

    def _read_shard(self, shard: Path, wanted: set[str]) -> tuple[_Entry, dict[str, np.ndarray]]:
        """A shard's own header (checked) and its rows of `wanted` keys, each checked by its checksum."""
        from safetensors import safe_open

        try:
            with safe_open(str(shard), framework="numpy") as fh:
                entry, checksums = _parse_header(fh.metadata() or {})
                rows = [(row, key) for row, key in enumerate(entry.keys) if key in wanted]
                if not rows:
                    picked: dict[int, np.ndarray] = {}
                elif len(rows) >= _WHOLE_SHARD * len(entry.keys):
                    values = fh.get_tensor("features")
                    picked = {row: values[row] for row, _ in rows}
                else:
                    part = fh.get_slice("features")
                    picked = {row: part[row : row + 1][0] for row, _ in rows}
        except CorruptShard:
            raise
        except Exception as exc:  # safetensors reports a damaged file in several ways
            raise CorruptShard(f"it cannot be read ({type(exc).__name__}: {exc})") from exc
        if len(checksums) != len(entry.keys):
            raise CorruptShard("its header is damaged (one checksum per row expected)")
        if entry.failed_checksum != failed_checksum(entry.failed):
            raise CorruptShard("its list of unreadable inputs does not match its checksum")
        out: dict[str, np.ndarray] = {}
        for row, key in rows:  # a key written twice (the same text twice in one call) is checked row by row
            value = np.array(picked[row], dtype=np.float32)
            if value.ndim != 1 or row_checksum(key, value) != checksums[row]:
                raise CorruptShard(f"row {row} does not match its checksum")
            out[key] = value
        return entry, out

    def _drop(self, shard: Path, reason: str) -> None:
        """Report a corrupt shard, and delete it (it is ours, and its inputs are extracted again)."""
        warnings.warn(
            f"feature cache shard '{shard}' is corrupt ({reason}); deleted, its features will be extracted again",
            RuntimeWarning,
            stacklevel=4,
        )
        try:
            shard.unlink(missing_ok=True)
        except OSError:
            pass

    # -- the index -------------------------------------------------------------------------------

    def _entries(self, folder: Path) -> dict[str, _Entry]:
        """shard name → what it holds, for every shard now in `folder` (the index, repaired)."""
        shards = set()
        legacy: list[Path] = []
        now = time.time()
        for path in folder.iterdir():
            name = path.name
            if name.startswith("shard-") and name.endswith(".safetensors"):
                shards.add(name)
            elif name.startswith(".tmp-"):
                _remove_if_stale(path, now)
        indexed, lines = _read_index(folder / INDEX)
        entries = {name: entry for name, entry in indexed.items() if name in shards}
        missing = sorted(shards - set(entries))
        repaired: dict[str, _Entry] = {}
        for name in missing:
            try:
                entry = _read_header(folder / name)
            except _LegacyShard:
                legacy.append(folder / name)
                continue
            except (CorruptShard, OSError) as exc:
                self._drop(folder / name, str(exc))
                continue
            repaired[name] = entry
        entries.update(repaired)
        if legacy:
            warnings.warn(
                f"feature cache '{folder}': {len(legacy)} shard(s) written by an older transferkit, without "
                "checksums; deleted, their features will be extracted again",
                RuntimeWarning,
                stacklevel=3,
            )
            for path in legacy:
                path.unlink(missing_ok=True)
        stale = lines - len(indexed.keys() & shards)
        if stale > max(8, len(entries)) or (repaired and stale):
            self._rewrite_index(folder, entries)
        elif repaired:
            for name, entry in repaired.items():
                self._append_index(folder, name, entry)
        return entries

    def _append_index(self, folder: Path, name: str, entry: _Entry) -> None:
        line = json.dumps({"shard": name, "keys": entry.keys, "failed": entry.failed}) + "\n"
        try:
            fd = os.open(folder / INDEX, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return  # the index is a hint: the shard is found from the folder listing next time
        try:
            _lock(fd)
            os.write(fd, b"\n" + line.encode("utf-8", "surrogatepass"))  # a torn line before cannot join it
        except OSError:
            pass
        finally:
            os.close(fd)

    def _rewrite_index(self, folder: Path, entries: dict[str, _Entry]) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-index-", suffix=".jsonl")
        except OSError:
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
                for name in sorted(entries):
                    entry = entries[name]
                    fh.write(json.dumps({"shard": name, "keys": entry.keys, "failed": entry.failed}) + "\n")
            os.replace(tmp, folder / INDEX)
        except OSError:
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- writing ---------------------------------------------------------------------------------

    def write(self, folder: Path, keys: Sequence[str], values: np.ndarray, failed: dict[str, str]) -> None:
        """Add one shard: `values[i]` is the vector of `keys[i]`; `failed` maps keys to reasons.

        Never raises for a failed write (a full disk, say): it warns once and stops writing.
        """
        from safetensors.numpy import save

        if (not keys and not failed) or self.write_error is not None:
            return
        keys = list(keys)
        arr = np.ascontiguousarray(values if len(keys) else np.zeros((0, 1), np.float32), dtype=np.float32)
        if arr.shape[0] != len(keys):
            raise ValueError(f"{len(keys)} keys but {arr.shape[0]} rows of features")
        first = list({key: i for i, key in reversed(list(enumerate(keys)))}.values())  # each key once
        if len(first) != len(keys):
            first.sort()
            keys, arr = [keys[i] for i in first], arr[first]
        meta = {
            "format": SHARD_FORMAT,
            "version": SHARD_VERSION,
            "keys": json.dumps(keys),
            "failed": json.dumps(failed),
            "checksums": json.dumps([row_checksum(k, row) for k, row in zip(keys, arr, strict=True)]),
            "failed_checksum": failed_checksum(failed),
        }
        digest = hashlib.sha256("".join(keys + sorted(failed)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"shard-{time.time_ns()}-{os.getpid()}-{digest}.safetensors"
        tmp: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".safetensors")
            # serialised in memory, written here: a full disk is then an OSError with its errno
            # (safetensors' own file writer reports it as a SafetensorError without one)
            write_all(fd, save({"features": arr}, metadata=meta))
            os.replace(tmp, folder / name)
        except OSError as exc:
            self._write_failed(folder, exc)
            return
        finally:
            if tmp is not None and os.path.exists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self._append_index(folder, name, _Entry(keys, dict(failed)))


def write_all(fd: int, data: bytes) -> None:
    """Write `data` to the open file `fd` and close it (closed also when a write fails)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class _LegacyShard(CorruptShard):
    """A shard written before checksums existed."""

    def __init__(self) -> None:
        super().__init__("written by an older transferkit, without checksums")


def _parse_header(meta: dict[str, str]) -> tuple[_Entry, list[str]]:
    """A shard header's entry and row checksums (`_LegacyShard`, `CorruptShard` when it cannot be)."""
    if meta.get("format") != SHARD_FORMAT:
        raise _LegacyShard()
    try:
        keys = json.loads(meta["keys"])
        failed = json.loads(meta.get("failed", "{}"))
        checksums = json.loads(meta["checksums"])
    except (KeyError, ValueError) as exc:
        raise CorruptShard(f"its header is damaged ({exc})") from exc
    if not (isinstance(keys, list) and isinstance(failed, dict) and isinstance(checksums, list)):
        raise CorruptShard("its header is damaged")
    entry = _Entry([str(k) for k in keys], {str(k): str(v) for k, v in failed.items()}, meta.get("failed_checksum"))
    return entry, [str(c) for c in checksums]


def _read_header(shard: Path) -> _Entry:
    """What a shard holds, from its own header (to rebuild the index)."""
    from safetensors import safe_open

    try:
        with safe_open(str(shard), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise CorruptShard(f"it cannot be read ({type(exc).__name__}: {exc})") from exc
    entry, checksums = _parse_header(meta)
    if len(checksums) != len(entry.keys):
        raise CorruptShard("its header is damaged (one checksum per row expected)")
    return entry


def _read_index(path: Path) -> tuple[dict[str, _Entry], int]:
    """The index's entries (the last line for a shard wins) and how many valid lines it has."""
    entries: dict[str, _Entry] = {}
    lines = 0
    try:
        text = path.read_bytes().decode("utf-8", "surrogatepass")
    except (OSError, UnicodeDecodeError):
        return entries, 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name, keys, failed = record["shard"], record["keys"], record.get("failed", {})
        except (ValueError, KeyError, TypeError):
            continue  # a torn line (a writer killed mid-append): the shard is found from the folder
        if isinstance(name, str) and isinstance(keys, list) and isinstance(failed, dict):
            entries[name] = _Entry([str(k) for k in keys], {str(k): str(v) for k, v in failed.items()})
            lines += 1
    return entries, lines


def _lock(fd: int) -> None:
    """An exclusive advisory lock on `fd` until it is closed (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: appends of one write() are still whole
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _remove_if_stale(path: Path, now: float) -> None:
    try:
        if now - path.stat().st_mtime > STALE_TMP_S:
            path.unlink()
    except OSError:
        pass
