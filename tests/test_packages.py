"""Files inside installed packages (`transferkit.packages`), found without importing them, and a file's sha256."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from transferkit.packages import package_file, sha256_file


def test_a_packaged_file_is_found_without_importing_its_package() -> None:
    sys.modules.pop("email.mime", None)
    found = package_file("email", "mime/text.py")  # any installed package with files: the standard library's
    assert found is not None and found.name == "text.py" and found.is_file()
    assert "email.mime" not in sys.modules
    assert package_file("email", "no/such/file.bin") is None
    assert package_file("transferkit_no_such_package", "x") is None
    assert package_file("json.decoder", "x") is None  # a module, not a package: no files of its own


def test_the_sha256_follows_the_files_bytes(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    assert sha256_file(path) == hashlib.sha256(b"abc").hexdigest()
    path.write_bytes(b"abcd")  # rewritten: another size, so never the memoised digest
    assert sha256_file(str(path)) == hashlib.sha256(b"abcd").hexdigest()
    stat = path.stat()
    path.write_bytes(b"abce")  # same size; the memo is keyed on the mtime too
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert sha256_file(path) == hashlib.sha256(b"abce").hexdigest()
