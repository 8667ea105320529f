"""Extraction fast path and the on-disk feature cache."""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import pytest
import torch

from transferkit.cache import FeatureCache, item_key
from transferkit.data import load_dataset
from transferkit.engines.run import is_installed
from transferkit.features import ExtractOptions, extract_features

OPTS = ExtractOptions(progress=False, batch_size=16)


def test_second_run_extracts_nothing(lite0, image_folder, tmp_path) -> None:
    items = load_dataset(image_folder).items[:12]
    cache = FeatureCache(tmp_path)
    first = extract_features(lite0, items, options=OPTS, cache=cache)
    assert first.extracted == 12 and first.cached == 0
    second = extract_features(lite0, items, options=OPTS, cache=cache)
    assert second.extracted == 0 and second.cached == 12
    np.testing.assert_array_equal(first.values, second.values)


def test_cache_is_keyed_by_file_identity(lite0, image_folder, tmp_path) -> None:
    items = load_dataset(image_folder).items[:4]
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(open(items[0], "rb").read())
    cache = FeatureCache(tmp_path / "cache")
    extract_features(lite0, [*items, str(copy)], options=OPTS, cache=cache)
    os.utime(copy, ns=(1, 1))  # the file changed: its features are recomputed
    again = extract_features(lite0, [*items, str(copy)], options=OPTS, cache=cache)
    assert again.extracted == 1 and again.cached == 4


def test_cache_key_includes_weights_and_precision(lite0, tmp_path) -> None:
    from transferkit.backbones import create_backbone

    cache = FeatureCache(tmp_path)
    random = create_backbone("efficientnet_lite0", weights="random")
    assert cache.folder(lite0, "bf16") != cache.folder(random, "bf16")
    assert cache.folder(lite0, "bf16") != cache.folder(lite0, "fp32")


def test_rows_are_cached_under_the_precision_their_engine_ran(lite0, image_folder, tmp_path, monkeypatch) -> None:
    """`auto` resolved to bf16 may run an engine in fp32: its rows go under fp32, never under bf16, and a
    later `auto` run reads them; rows of two precisions in one result are said."""
    import transferkit.engines.select as select
    import transferkit.features as features

    monkeypatch.setattr(features, "resolve_precision", lambda asked, device: "bf16" if asked == "auto" else asked)
    monkeypatch.setattr(select, "cpu_supports_bf16", lambda: False)  # every candidate of `auto` runs fp32
    items = load_dataset(image_folder).items[:6]
    keys = [item_key(item, "image") for item in items]
    cache = FeatureCache(tmp_path)
    auto = ExtractOptions(progress=False, batch_size=16, precision="auto", engine="torch")
    first = extract_features(lite0, items, options=auto, cache=cache)
    assert first.extracted == 6 and first.precision == "fp32"
    assert cache.lookup(cache.folder(lite0, "bf16"), keys) == ({}, {})
    assert len(cache.lookup(cache.folder(lite0, "fp32"), keys)[0]) == 6
    again = extract_features(lite0, items, options=auto, cache=cache)
    assert again.extracted == 0 and again.cached == 6 and again.precision == "fp32" and not again.notes

    bf16 = ExtractOptions(progress=False, batch_size=16, precision="bf16", engine="torch")
    assert extract_features(lite0, items[:2], options=bf16, cache=cache).precision == "bf16"
    mixed = extract_features(lite0, items, options=auto, cache=cache)  # bf16's folder is read first
    assert mixed.extracted == 0 and mixed.precision == "fp32"
    assert mixed.notes == ["features in more than one precision: 2 bf16 (2 of them from the cache), "
                           "4 fp32 (4 of them from the cache)"]


def test_failures_are_cached_and_reported(lite0, image_folder, tmp_path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    items = [*load_dataset(image_folder).items[:3], str(bad)]
    cache = FeatureCache(tmp_path / "cache")
    first = extract_features(lite0, items, options=OPTS, cache=cache)
    assert list(first.failed) == [3] and "bad.jpg" in first.failed[3]
    assert first.values.shape == (3, 1280) and first.ok.tolist() == [True, True, True, False]
    second = extract_features(lite0, items, options=OPTS, cache=cache)
    assert second.extracted == 0 and list(second.failed) == [3]


def test_no_torn_files_left_behind(lite0, image_folder, tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    extract_features(lite0, load_dataset(image_folder).items[:5], options=OPTS, cache=cache)
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    # the cache's key index (transferkit.cache) and its marker (transferkit.outputs) are not shards
    shards = [name for name in files if name not in ("index.jsonl", ".transferkit-output")]
    assert shards and all(name.startswith("shard-") and name.endswith(".safetensors") for name in shards)


def test_a_corrupt_shard_is_ignored(lite0, image_folder, tmp_path) -> None:
    items = load_dataset(image_folder).items[:3]
    cache = FeatureCache(tmp_path)
    extract_features(lite0, items, options=OPTS, cache=cache)
    shard = next(tmp_path.rglob("shard-*"))
    shard.write_bytes(b"garbage")  # e.g. a disk error
    again = extract_features(lite0, items, options=OPTS, cache=cache)
    assert again.extracted == 3


@pytest.mark.parametrize("workers", [0, 1])
def test_bf16_matches_fp32(lite0, image_folder, workers: int) -> None:
    from transferkit.runtime import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("CPU has no native bf16")
    items = load_dataset(image_folder).items[:8]
    bf16 = extract_features(lite0, items, options=ExtractOptions(progress=False, precision="bf16",
                                                                 num_workers=workers))
    fp32 = extract_features(lite0, items, options=ExtractOptions(progress=False, precision="fp32"))
    cos = (bf16.values * fp32.values).sum(1) / np.linalg.norm(bf16.values, axis=1) / np.linalg.norm(fp32.values, axis=1)
    assert cos.min() > 0.99


def test_same_seed_same_features(lite0, image_folder) -> None:
    items = load_dataset(image_folder).items[:6]
    a = extract_features(lite0, items, options=OPTS)
    b = extract_features(lite0, items, options=OPTS)
    np.testing.assert_array_equal(a.values, b.values)


def test_extraction_leaves_the_backbone_untouched(lite0, image_folder) -> None:
    import torch

    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    extract_features(lite0, load_dataset(image_folder).items[:4], options=OPTS)
    after = lite0.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in lite0.modules())  # not folded in place


def test_folded_inference_copy_gives_the_same_features(lite0, image_folder) -> None:
    import torch

    batch = lite0.preprocess(load_dataset(image_folder).items[:4])
    fast = lite0.for_inference()
    assert fast is not lite0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert len(fast.state_dict()) < len(lite0.state_dict())
    with torch.inference_mode():
        reference = lite0.eval().forward_features(batch)
        folded = fast.forward_features(batch.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-4)


def test_fold_batchnorm_handles_plain_conv_bn_relu() -> None:
    import torch
    from torch import nn

    from transferkit.runtime import fold_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1),
                          nn.BatchNorm2d(4))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 12, 12)
    expected = model(x)
    assert fold_batchnorm(model, x) == 2
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_wide_features_are_cached_in_bounded_shards(tmp_path, monkeypatch) -> None:
    """Hashed n-grams (16k floats a row) go to the cache in shards of bounded bytes, read back whole."""
    import transferkit.features as features
    from transferkit.backbones import create_backbone

    monkeypatch.setattr(features, "SHARD_BYTES", 10 * 4 * 16384)  # 10 rows a shard
    tfidf = create_backbone("tfidf")
    texts = [f"text number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(35)]
    cache = FeatureCache(tmp_path)
    first = extract_features(tfidf, texts, options=ExtractOptions(progress=False, batch_size=5), cache=cache)
    shards = list(cache.folder(tfidf, first.precision).glob("shard-*.safetensors"))
    assert len(shards) == 4
    again = extract_features(tfidf, texts, options=ExtractOptions(progress=False), cache=cache)
    assert again.extracted == 0 and again.cached == 35
    np.testing.assert_array_equal(again.values, first.values)


def test_a_concatenation_is_each_part_extracted_side_by_side(image_folder, tmp_path) -> None:
    """`A+B`: each part's features in its columns (the widest written straight into the result, the others
    copied in after), an input one part cannot read dropped from all of them."""
    from transferkit.backbones import create_backbone

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    items = [*load_dataset(image_folder).items[:5], str(bad), load_dataset(image_folder).items[5]]
    both = create_backbone("hog+test_efficientnet@random")
    parts = both.parts()
    feats = extract_features(both, items, options=OPTS, cache=FeatureCache(tmp_path / "cache"))
    alone = [extract_features(part, items, options=OPTS) for part in parts]
    assert list(feats.failed) == [5] and feats.values.shape == (6, both.num_features)
    np.testing.assert_array_equal(feats.values, np.concatenate([a.values for a in alone], axis=1))
    swapped = extract_features(create_backbone("test_efficientnet@random+hog"), items, options=OPTS)
    np.testing.assert_array_equal(swapped.values, np.concatenate([a.values for a in alone[::-1]], axis=1))


def test_batches_after_the_first_are_collated_ahead_in_a_thread(monkeypatch) -> None:
    """Once the engine is chosen, the next batch is loaded and collated in a thread while the engine runs this
    one: the same features as batches collated in turn, and an error collating a later batch still comes out."""
    import threading

    import transferkit.features as features
    from transferkit.backbones import create_backbone

    tfidf = create_backbone("tfidf")
    texts = [f"text number {i} about {'cats' if i % 3 else 'dogs'}" for i in range(23)]
    real = type(tfidf).collate
    threads: list[str] = []

    def collate(self, samples):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        if any(float(s.sum()) < 0 for s in samples):
            raise RuntimeError("boom")
        return real(self, samples)

    monkeypatch.setattr(type(tfidf), "collate", collate)
    options = ExtractOptions(progress=False, batch_size=5, num_workers=0)
    ahead = extract_features(tfidf, texts, options=options)
    assert sum(name.startswith("transferkit-collate") for name in threads) == 4  # batches 2-5 of 5
    monkeypatch.setattr(features._Batches, "collate_ahead", lambda self: None)
    in_turn = extract_features(tfidf, texts, options=options)
    np.testing.assert_array_equal(ahead.values, in_turn.values)
    monkeypatch.undo()
    monkeypatch.setattr(type(tfidf), "collate", collate)
    real_load = type(tfidf).load
    monkeypatch.setattr(type(tfidf), "load", lambda self, item: -real_load(self, item) if item == texts[17]
                        else real_load(self, item))
    with pytest.raises(RuntimeError, match="boom"):
        extract_features(tfidf, texts, options=options)


@pytest.mark.parametrize("training", [True, False])
def test_extraction_leaves_the_backbone_in_its_mode(lite0, image_folder, training: bool) -> None:
    items = load_dataset(image_folder).items[:3]
    was = lite0.training
    lite0.train(training)
    try:
        extract_features(lite0, items, options=OPTS)
        assert {m.training for m in lite0.modules()} == {training}
    finally:
        lite0.train(was)


@pytest.mark.skipif(not is_installed("openvino"), reason="openvino not installed")
def test_a_batch_starts_on_openvino_streams_before_the_one_before_is_put_in_place(lite0, image_folder, tmp_path,
                                                                                  monkeypatch, request) -> None:
    """On OpenVINO's streams each batch's runs start before the batch before it is collected: every row still
    lands in its input's place (a bad input among them fails alone), the features are PyTorch's, and the cache
    gives them back the same."""
    from transferkit.engines import select
    from transferkit.engines.run import OpenVINORunner

    events: list[str] = []
    real_start_all = OpenVINORunner.start_all

    def start_all(self: OpenVINORunner, runs: Any) -> Any:
        events.append("start")
        collect = real_start_all(self, runs)

        def collected() -> Any:
            events.append("collect")
            return collect()

        return collected

    monkeypatch.setattr(OpenVINORunner, "start_all", start_all)
    monkeypatch.setattr(select, "THROUGHPUT_MIN_ITEMS", 8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # streams need two threads: under `make test` each worker runs on one (conftest)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not a jpeg")
    images = list(load_dataset(image_folder).items[:14])
    items = [*images[:7], str(bad), *images[7:]]
    opts = ExtractOptions(progress=False, batch_size=4, engine="openvino", precision="fp32", num_workers=0)
    cache = FeatureCache(tmp_path / "cache")
    feats = extract_features(lite0, items, options=opts, cache=cache)
    assert feats.engine == "openvino" and list(feats.failed) == [7] and feats.values.shape == (14, 1280)
    assert any(a == b == "start" for a, b in itertools.pairwise(events)), events  # one ran ahead
    reference = extract_features(lite0, images, options=ExtractOptions(progress=False, engine="torch",
                                                                       precision="fp32", optimize=False))
    np.testing.assert_allclose(feats.values, reference.values, rtol=1e-3, atol=1e-4)
    again = extract_features(lite0, items, options=opts, cache=cache)
    assert again.extracted == 0
    np.testing.assert_array_equal(again.values, feats.values)
