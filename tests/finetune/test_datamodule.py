"""The fine-tuning data: seeded samplers (the order depends on seed and epoch only, shards cover every
sample), the target sampler's length, and the dataset that loads each sample under its own seed and
turns an unreadable input into a skipped one. The end-to-end runs with target batches are in
`test_target.py`."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transferkit.errors import InputError
from transferkit.finetune.datamodule import SampleDataset, SeededSampler, TargetSampler


def _order(sampler: SeededSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_the_order_depends_on_seed_and_epoch_only() -> None:
    a, b = SeededSampler(20, seed=3, shuffle=True), SeededSampler(20, seed=3, shuffle=True)
    assert _order(a, 1) == _order(b, 1)  # same (seed, epoch): same indices and sample seeds
    indices = [[i for i, _ in _order(s, e)] for s, e in ((a, 1), (a, 2), (SeededSampler(20, seed=4, shuffle=True), 1))]
    assert indices[0] != indices[1] and indices[0] != indices[2]  # another epoch or seed: another order
    assert len({s for _, s in _order(a, 1)} & {s for _, s in _order(a, 2)}) == 0  # and other sample seeds
    assert sorted(i for i, _ in _order(a, 5)) == list(range(20))  # a permutation
    assert [i for i, _ in _order(SeededSampler(5, seed=0, shuffle=False), 3)] == [0, 1, 2, 3, 4]


def test_shards_cover_every_sample_with_equal_lengths() -> None:
    shards = [SeededSampler(11, seed=0, shuffle=True, rank=r, world=3) for r in range(3)]
    orders = [_order(s, 2) for s in shards]
    assert [len(o) for o in orders] == [len(s) for s in shards] == [4, 4, 4]  # 11 padded to 12
    assert {i for o in orders for i, _ in o} == set(range(11))
    seeds = [s for o in orders for _, s in o]
    assert len(set(seeds)) == len(seeds)  # every draw its own sample seed


def test_weights_draw_in_proportion() -> None:
    weights = np.array([0.0, 0.0, 1.0, 3.0])
    drawn = [i for i, _ in _order(SeededSampler(4, seed=0, shuffle=True, weights=weights), 0)]
    assert set(drawn) <= {2, 3}
    many = SeededSampler(4000, seed=0, shuffle=True, weights=np.tile(weights, 1000))
    counts = np.bincount([i % 4 for i, _ in _order(many, 0)], minlength=4)
    assert counts[0] == counts[1] == 0 and 2.5 < counts[3] / counts[2] < 3.5


def test_the_target_sampler_repeats_its_inputs_to_the_labelled_length() -> None:
    sampler = TargetSampler(3, 8, seed=1)
    order = _order(sampler, 0)
    assert len(order) == len(sampler) == 8
    assert sorted(i for i, _ in order[:3]) == [0, 1, 2] and sorted(i for i, _ in order[3:6]) == [0, 1, 2]
    assert order == _order(TargetSampler(3, 8, seed=1), 0) and order != _order(sampler, 1)


def test_each_sample_loads_under_its_own_seed_and_a_bad_one_is_skipped() -> None:
    def loader(item: object) -> object:
        if item == "broken":
            raise InputError("cannot read broken")
        return (item, torch.rand(1).item(), random.random())

    data = SampleDataset(["a", "b", "broken"], [0, 1, 1], loader, seeded=True)
    outside = random.getstate()
    first, again, other = data[(0, 7)], data[(0, 7)], data[(0, 8)]
    assert random.getstate() == outside  # the caller's RNG is left as it was
    assert first == again and first != other and first[1] == 0
    assert data[(2, 7)] == (None, 1)
    unseeded = SampleDataset(["a"], [0], loader, seeded=False)
    assert unseeded[0][0][0] == "a"  # type: ignore[index]
    with pytest.raises(IndexError):
        data[(3, 0)]
