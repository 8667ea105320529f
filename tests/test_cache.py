"""The feature cache trusts nothing it reads back: checksums, content fingerprints, a key index
that survives concurrent writers and kill -9, and a full or unwritable disk (issue 12, issue 9)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.cache import FeatureCache, item_key
from transferkit.errors import ConfigError

DIM = 8
INDEX = "index.jsonl"  # the key index file (transferkit.cache.INDEX)


def vector(key: str) -> np.ndarray:
    """A deterministic vector per key, so that any process can check what it reads."""
    seed = int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def write_shard(cache: FeatureCache, folder: Path, keys: list[str], failed: dict[str, str] | None = None) -> None:
    values = np.stack([vector(k) for k in keys]) if keys else np.zeros((0, DIM), np.float32)
    cache.write(folder, keys, values, failed or {})


def shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard-*.safetensors"))


@pytest.fixture
def small_backbone():
    """A random-init ResNet-18 (fast, deterministic, no weight files)."""
    from transferkit.backbones import create_backbone

    return create_backbone("resnet18", weights="random")


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def extract(backbone, items, cache, **options):
    from transferkit.features import ExtractOptions, extract_features

    opts = ExtractOptions(progress=False, precision="fp32", num_workers=0, batch_size=4, **options)
    return extract_features(backbone, items, options=opts, cache=cache)


# -- item 5: shards carry checksums ---------------------------------------------------------------


def test_a_shard_with_overwritten_values_is_reported_deleted_and_recomputed(small_backbone, images, tmp_path) -> None:
    """Issue 12 item 5: overwriting a shard's tensor bytes (header intact) was used as is (100% → 34%)."""
    cache = FeatureCache(tmp_path / "cache")
    first = extract(small_backbone, images, cache)
    (shard,) = shards(cache.folder(small_backbone, "fp32"))
    raw = bytearray(shard.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    raw[header:] = np.random.default_rng(1).standard_normal((len(raw) - header) // 4).astype(np.float32).tobytes()
    shard.write_bytes(bytes(raw))

    expected = rf"shard '.*{shard.name}' is corrupt \(row 0 does not match its checksum\)"
    with pytest.warns(RuntimeWarning, match=expected):
        again = extract(small_backbone, images, cache)
    assert not shard.exists()
    assert again.extracted == len(images) and again.cached == 0
    np.testing.assert_array_equal(again.values, first.values)
    third = extract(small_backbone, images, cache)  # the recomputed shard is good
    assert third.extracted == 0 and third.cached == len(images)


def edit_metadata(shard: Path, edit) -> None:
    """Rewrite a shard's header metadata with `edit(metadata)` (a well-formed header: only checksums can tell)."""
    raw = shard.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    edit(header["__metadata__"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    shard.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def test_a_shard_whose_header_was_edited_is_not_trusted(tmp_path) -> None:
    """Issue 12 item 5: a key swapped in a shard's header (still valid JSON) fails its row checksum."""
    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    write_shard(cache, folder, ["aaaa", "bbbb"])
    (shard,) = shards(folder)
    edit_metadata(shard, lambda meta: meta.update(keys=meta["keys"].replace("aaaa", "cccc")))
    (folder / INDEX).unlink()
    with pytest.warns(RuntimeWarning, match="row 0 does not match its checksum"):
        vectors, _ = cache.lookup(folder, ["cccc", "bbbb"])
    assert vectors == {} and not shard.exists()


def test_failures_are_checked_too(tmp_path) -> None:
    """Issue 12 item 5: the cached list of unreadable inputs has a checksum of its own; a wrong index
    costs a re-read of the shard, never a wrong answer."""
    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    write_shard(cache, folder, ["good"], {"bad": "not an image"})
    assert cache.lookup(folder, ["bad"])[1] == {"bad": "not an image"}
    index = folder / INDEX
    index.write_text(index.read_text().replace("not an image", "something else"))
    assert cache.lookup(folder, ["bad"])[1] == {"bad": "not an image"}  # the shard's own header wins
    assert "something else" not in index.read_text()  # and the index was repaired
    (shard,) = shards(folder)
    edit_metadata(shard, lambda meta: meta.update(failed=json.dumps({"bad": "fine, really"})))
    with pytest.warns(RuntimeWarning, match="unreadable inputs does not match its checksum"):
        assert cache.lookup(folder, ["bad"]) == ({}, {})


def test_shards_of_an_older_version_are_replaced(tmp_path) -> None:
    """Issue 12 item 5: a shard without checksums (written before them) is not used unverified."""
    from safetensors.numpy import save_file

    folder = tmp_path / "f"
    folder.mkdir()
    save_file({"features": np.ones((1, DIM), np.float32)}, str(folder / "shard-1-x.safetensors"),
              metadata={"keys": json.dumps(["k"]), "failed": "{}"})
    with pytest.warns(RuntimeWarning, match="older transferkit, without checksums"):
        assert FeatureCache(tmp_path).lookup(folder, ["k"]) == ({}, {})
    assert shards(folder) == []


# -- item 6: the file key includes a content fingerprint ------------------------------------------


def test_a_file_replaced_by_another_with_the_same_size_and_mtime_gets_new_features(
    small_backbone, tmp_path
) -> None:
    """Issue 12 item 6: a file replaced by another of the same size and mtime got the old features."""
    path = tmp_path / "a.bmp"  # BMP: the same size in bytes for the same picture size
    Image.new("RGB", (32, 32), (250, 0, 0)).save(path)
    stat = path.stat()
    cache = FeatureCache(tmp_path / "cache")
    red = extract(small_backbone, [str(path)], cache)
    Image.new("RGB", (32, 32), (0, 0, 250)).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    blue = extract(small_backbone, [str(path)], cache)
    assert blue.extracted == 1 and blue.cached == 0
    assert not np.array_equal(red.values, blue.values)


def test_the_fingerprint_reads_both_ends_of_a_large_file(tmp_path) -> None:
    """Issue 12 item 6: a change in the first or last block of a large file changes its key."""
    path = tmp_path / "big.wav"
    data = bytearray(os.urandom(1 << 20))
    path.write_bytes(bytes(data))
    mtime = path.stat().st_mtime_ns
    keys = {item_key(str(path), "audio")}
    for offset in (10, len(data) - 10):
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        os.utime(path, ns=(mtime, mtime))
        keys.add(item_key(str(path), "audio"))
    assert len(keys) == 3


# -- item 8 (cache half): a full disk, an unwritable folder ----------------------------------------


def test_disk_full_while_writing_the_cache_warns_once_and_extraction_goes_on(
    small_backbone, images, tmp_path, monkeypatch
) -> None:
    """Issue 12 item 8: disk full while writing the cache killed the fit; now one warning, features returned."""
    cache = FeatureCache(tmp_path / "cache")
    calls = []

    def full(fd, data):  # as os.write answers on a full disk (the real thing: tests/commands/test_full_disk.py)
        calls.append(1)
        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("transferkit.cache.write_all", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats = extract(small_backbone, images, cache, shard_size=2)
    messages = [str(w.message) for w in caught if "feature cache" in str(w.message)]
    assert len(messages) == 1 and "the disk is full" in messages[0] and "goes on without" in messages[0]
    assert feats.values.shape == (len(images), small_backbone.num_features) and feats.ok.all()
    assert len(calls) == 1  # after the first failure nothing more is attempted
    from transferkit.outputs import MARKER

    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name != MARKER]  # no temp file left


def test_an_unwritable_cache_folder_is_an_error_before_extraction(small_backbone, images, monkeypatch) -> None:
    """Issue 12 item 8: `--cache-dir /dev/null/x` failed after extraction (a traceback); now a clear
    error before any input is read."""
    loaded = []
    loader = small_backbone.sample_loader()
    monkeypatch.setattr(small_backbone, "sample_loader", lambda: lambda item: loaded.append(item) or loader(item))
    with pytest.raises(ConfigError, match=r"cache folder '/dev/null/x' cannot be written.*--cache-dir.*--no-cache"):
        FeatureCache("/dev/null/x").check_writable()
    with pytest.raises(ConfigError, match="cannot be written"):
        extract(small_backbone, images, FeatureCache("/dev/null/x"))
    assert loaded == []


def test_an_unwritable_cache_folder_through_the_cli(image_folder, tmp_path) -> None:
    """Issue 12 item 8: the CLI shows the message (exit non-zero), not a traceback after extraction."""
    from typer.testing import CliRunner

    from transferkit.commands import app

    result = CliRunner().invoke(app, ["fit", str(image_folder), "--out", str(tmp_path / "m"), "--cache-dir",
                                      "/dev/null/x", "--backbone", "resnet18", "--weights", "random"])
    assert isinstance(result.exception, ConfigError), result.exception
    assert "cache folder '/dev/null/x' cannot be written" in str(result.exception)
    assert "extracted" not in result.output
    assert not (tmp_path / "m").exists()


# -- issue 9 item 6: the key index ------------------------------------------------------------------


def test_a_one_key_lookup_opens_only_the_shard_that_holds_it(tmp_path, monkeypatch) -> None:
    """Issue 9 item 6: every extraction read every shard of the folder; now the index says which one."""
    import safetensors

    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    for s in range(6):
        write_shard(cache, folder, [f"s{s}-k{i}" for i in range(50)])
    opened: list[str] = []
    real_open = safetensors.safe_open

    def counting_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", counting_open)
    vectors, _ = cache.lookup(folder, ["s3-k7"])
    np.testing.assert_array_equal(vectors["s3-k7"], vector("s3-k7"))
    assert len(opened) == 1 and opened[0] == shards(folder)[3].name
    assert cache.lookup(folder, ["nowhere"]) == ({}, {}) and len(opened) == 1


def test_the_index_is_rebuilt_from_the_shards(tmp_path) -> None:
    """Issue 9 item 6: no index, a torn last line, or a shard the index misses (a writer killed between
    the two steps): lookups stay right, and the index is repaired."""
    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    write_shard(cache, folder, ["a", "b"])
    write_shard(cache, folder, ["c"], {"d": "broken"})
    everything = ["a", "b", "c", "d"]
    expected = cache.lookup(folder, everything)
    assert sorted(expected[0]) == ["a", "b", "c"] and expected[1] == {"d": "broken"}

    (folder / INDEX).unlink()
    got = cache.lookup(folder, everything)
    assert sorted(got[0]) == ["a", "b", "c"] and got[1] == expected[1]
    assert len([line for line in (folder / INDEX).read_text().splitlines() if line.strip()]) == 2  # rebuilt

    text = (folder / INDEX).read_text()
    (folder / INDEX).write_text(text[: len(text) - 25])  # torn last line
    write_shard(cache, folder, ["e"])  # appended after the torn line
    got = cache.lookup(folder, [*everything, "e"])
    assert sorted(got[0]) == ["a", "b", "c", "e"] and got[1] == expected[1]

    (shards(folder)[0]).unlink()  # a shard gone (deleted as corrupt, say): its index line is stale
    got = cache.lookup(folder, [*everything, "e"])
    assert sorted(got[0]) == ["c", "e"]


_WRITER = """
import sys, numpy as np
from pathlib import Path
sys.path[:0] = [{src!r}, {tests!r}]
from test_cache import FeatureCache, write_shard
cache, folder = FeatureCache({root!r}), Path({folder!r})
name = sys.argv[1]
for s in range(int(sys.argv[2])):
    keys = [f"{{name}}-{{s}}-{{i}}" for i in range(int(sys.argv[3]))]
    write_shard(cache, folder, keys, {{f"{{name}}-{{s}}-bad": "x"}})
print("done", flush=True)
"""


def _writer(tmp_path: Path, name: str, n_shards: int, rows: int) -> subprocess.Popen[str]:
    code = _WRITER.format(src=str(Path(__file__).parents[1] / "src"), tests=str(Path(__file__).parent),
                          root=str(tmp_path), folder=str(tmp_path / "f"))
    return subprocess.Popen([sys.executable, "-c", code, name, str(n_shards), str(rows)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check_consistent(cache: FeatureCache, folder: Path) -> int:
    """Every shard on disk is found through the index and every row matches its checksum."""
    from safetensors import safe_open

    expected: set[str] = set()
    for shard in shards(folder):
        with safe_open(str(shard), framework="numpy") as fh:
            expected.update(json.loads((fh.metadata() or {})["keys"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt shard would warn: none may
        vectors, _ = cache.lookup(folder, expected)
    assert set(vectors) == expected
    for key, value in vectors.items():
        np.testing.assert_array_equal(value, vector(key))
    return len(expected)


def test_concurrent_writers_share_one_folder(tmp_path) -> None:
    """Issue 9 item 6: several processes writing the same cache folder at once lose nothing."""
    procs = [_writer(tmp_path, f"w{i}", 15, 20) for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    assert _check_consistent(cache, folder) == 3 * 15 * 20
    entries = [json.loads(line)["shard"] for line in (folder / INDEX).read_text().splitlines() if line.strip()]
    assert sorted(entries) == [p.name for p in shards(folder)]  # every shard indexed exactly once
    assert cache.lookup(folder, ["w1-3-bad"])[1] == {"w1-3-bad": "x"}


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_a_consistent_cache(tmp_path) -> None:
    """Issue 12 (fault injection) and issue 9 item 6: a writer killed with SIGKILL at random points,
    4 times (one kill point drawn in each quarter of the writing window: each run is a process start and
    a check of every shard so far), never leaves a torn shard or an index that misleads; a later writer
    succeeds."""
    rng = random.Random(12)
    cache, folder = FeatureCache(tmp_path), tmp_path / "f"
    for run in range(4):
        proc = _writer(tmp_path, f"run{run}", 400, 64)
        time.sleep(0.3 + (run + rng.random()) * 0.7 / 4)  # the import takes ~0.3 s; then shards are being written
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        _check_consistent(cache, folder)
    before = _check_consistent(cache, folder)
    proc = _writer(tmp_path, "after", 2, 5)
    assert proc.communicate(timeout=60)[0].strip() == "done"
    assert _check_consistent(cache, folder) == before + 10


def test_the_same_input_twice_in_one_write_reads_back_clean(tmp_path) -> None:
    """Duplicate keys in one shard (the same text twice in one extraction, its rows slightly apart
    under bf16) are stored once and never reported as corrupt."""
    import warnings

    import numpy as np

    from transferkit.cache import FeatureCache

    cache = FeatureCache(tmp_path)
    folder = tmp_path / "features" / "x"
    rows = np.array([[1.0, 2.0], [3.0, 4.0], [1.0001, 2.0001]], np.float32)
    cache.write(folder, ["a", "b", "a"], rows, {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectors, _ = cache.lookup(folder, ["a", "b"])
    assert set(vectors) == {"a", "b"} and np.allclose(vectors["a"], [1.0, 2.0])
