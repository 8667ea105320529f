"""Files shipped inside installed packages (the offline zoo's wheels), found without importing them.

Importing some of those packages has side effects (torchaudio imports, torch thread settings), and
their data files are all we need.
"""

from __future__ import annotations

import importlib.util
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
