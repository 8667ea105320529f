"""`--backbone auto`'s selection: when the pretrained features carry no signal, the from-scratch
baseline wins, is chosen, and the table says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from transferkit.data import load_dataset
from transferkit.data.split import split_indices


def _stripes(root: Path, n_per_class: int = 24, seed: int = 0) -> Path:
    """Horizontal against vertical stripes, in random colours and phases: orientation is the label."""
    rng = np.random.default_rng(seed)
    for label in ("horizontal", "vertical"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            period = int(rng.integers(4, 9))
            phase = int(rng.integers(0, period))
            line = ((np.arange(64) + phase) // (period // 2)) % 2
            mask = np.tile(line[:, None], (1, 64)) if label == "horizontal" else np.tile(line[None, :], (64, 1))
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            pixels = np.where(mask[..., None] == 1, a, b).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def test_from_scratch_wins_where_the_pretrained_features_carry_no_signal(tmp_path: Path) -> None:
    from transferkit.ranking.select import select

    data = load_dataset(_stripes(tmp_path / "stripes"))
    splits = split_indices(data.labels, val_fraction=0.3, test_fraction=0.0, seed=0)
    # a random-init network, globally pooled, stands for pretrained features that do not fit the task
    selection = select(data, splits["train"], splits["val"], candidates=["test_efficientnet@random", "hog"],
                       cache=tmp_path / "cache", seed=0, combine=False)
    assert selection.winner is not None and selection.winner.name == "hog" and selection.winner.scratch
    assert selection.scratch is not None and selection.scratch.val_accuracy >= 0.9
    other = next(c for c in selection.candidates if c.name != "hog")
    assert other.val_accuracy < selection.winner.val_accuracy
    assert "from scratch wins" in selection.verdict()


def test_a_validation_accuracy_tie_goes_to_the_lower_log_loss_whatever_the_order() -> None:
    from transferkit.ranking.select import Candidate, pick_winner

    sharp = Candidate("mfcc", "single", ["mfcc"], val_accuracy=1.0, val_log_loss=0.02, features=256)
    vague = Candidate("ge2e", "single", ["ge2e"], val_accuracy=1.0, val_log_loss=0.4, features=40)
    worse = Candidate("yamnet", "single", ["yamnet"], val_accuracy=0.9, val_log_loss=0.01, features=1024)
    for order in ([sharp, vague, worse], [worse, vague, sharp], [vague, sharp, worse]):
        assert pick_winner(order) is sharp


def test_candidates_past_the_time_budget_are_skipped_and_said_from_scratch_still_scored(tmp_path: Path) -> None:
    from transferkit.ranking.select import select

    data = load_dataset(_stripes(tmp_path / "stripes", n_per_class=12))
    splits = split_indices(data.labels, val_fraction=0.3, test_fraction=0.0, seed=0)
    names = ["test_efficientnet@random", "test_efficientnet:grid2@random", "hog"]
    selection = select(data, splits["train"], splits["val"], candidates=names, cache=tmp_path / "cache", seed=0,
                       combine=False, budget_seconds=1e-6)
    rows = {c.name: c for c in selection.candidates}
    assert rows[names[0]].val_accuracy is not None  # the first is always scored: it sets the pace
    assert rows[names[1]].val_accuracy is None and "over the time budget" in rows[names[1]].note
    assert rows["hog"].val_accuracy is not None and selection.scratch is rows["hog"]
