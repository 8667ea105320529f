"""A file's content fingerprint: what the feature cache keys a file's content by, and what seeds an augmented
view of it (so the same file gives the same view wherever it lies)."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: bytes hashed at each end of a file for its content fingerprint
FINGERPRINT_BLOCK = 4096


def fingerprint(path: str | Path, size: int) -> str:
    """sha256 (hex) over the first and last `FINGERPRINT_BLOCK` bytes of a file of `size` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(FINGERPRINT_BLOCK))
        if size > FINGERPRINT_BLOCK:
            fh.seek(max(FINGERPRINT_BLOCK, size - FINGERPRINT_BLOCK))
            h.update(fh.read(FINGERPRINT_BLOCK))
    return h.hexdigest()
