"""`--backbone auto`'s selection: when the pretrained features carry no signal, the from-scratch
baseline wins, is chosen, and the table says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    from transferkit.selection.backbone import select

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
    from transferkit.selection.backbone import Candidate, pick_winner

    sharp = Candidate("mfcc", "single", ["mfcc"], val_accuracy=1.0, val_log_loss=0.02, features=256)
    vague = Candidate("ge2e", "single", ["ge2e"], val_accuracy=1.0, val_log_loss=0.4, features=40)
    worse = Candidate("yamnet", "single", ["yamnet"], val_accuracy=0.9, val_log_loss=0.01, features=1024)
    for order in ([sharp, vague, worse], [worse, vague, sharp], [vague, sharp, worse]):
        assert pick_winner(order) is sharp


def test_with_a_target_dev_ranks_the_candidates_not_in_domain_validation() -> None:
    from transferkit.selection.backbone import Candidate, pick_winner

    # reads best on DATA's validation, worst where the model will be used: DEV picks the other
    in_domain = Candidate("a", "single", ["a"], val_accuracy=1.0, val_log_loss=0.01, features=10,
                          dev_accuracy=0.55, dev_log_loss=1.2)
    shifted = Candidate("b", "single", ["b"], val_accuracy=0.9, val_log_loss=0.3, features=10,
                        dev_accuracy=0.8, dev_log_loss=0.6)
    assert pick_winner([in_domain, shifted]) is shifted
    in_domain.dev_accuracy = shifted.dev_accuracy = None  # without a target: validation accuracy again
    assert pick_winner([in_domain, shifted]) is in_domain


@pytest.mark.slow  # extracts two candidates' features of 68 images (seconds; a minute under load)
def test_select_with_a_target_scores_dev_and_shows_it(tmp_path: Path) -> None:
    from rich.console import Console

    from transferkit.selection.backbone import select

    data = load_dataset(_stripes(tmp_path / "stripes"))
    splits = split_indices(data.labels, val_fraction=0.3, test_fraction=0.0, seed=0)
    target = [str(p) for p in sorted(_stripes(tmp_path / "target", n_per_class=10, seed=3).rglob("*.png"))]
    selection = select(data, splits["train"], splits["val"], candidates=["test_efficientnet@random", "hog"],
                       cache=tmp_path / "cache", seed=0, combine=True, target=target)
    assert selection.criterion.startswith("DEV")
    assert all(c.dev_accuracy is not None for c in selection.candidates), selection.candidates
    console = Console(record=True, width=200)
    console.print(selection)
    assert "DEV target acc." in console.export_text()
    assert selection.to_dict()["rows"][0]["dev_accuracy"] is not None


def test_candidates_past_the_time_budget_are_skipped_and_said_from_scratch_still_scored(tmp_path: Path) -> None:
    from transferkit.selection.backbone import select

    data = load_dataset(_stripes(tmp_path / "stripes", n_per_class=12))
    splits = split_indices(data.labels, val_fraction=0.3, test_fraction=0.0, seed=0)
    names = ["test_efficientnet@random", "test_efficientnet:grid2@random", "hog"]
    selection = select(data, splits["train"], splits["val"], candidates=names, cache=tmp_path / "cache", seed=0,
                       combine=False, budget_seconds=1e-6)
    rows = {c.name: c for c in selection.candidates}
    assert rows[names[0]].val_accuracy is not None  # the first is always scored: it sets the pace
    assert rows[names[1]].val_accuracy is None and "over the time budget" in rows[names[1]].note
    assert rows["hog"].val_accuracy is not None and selection.scratch is rows["hog"]


def test_a_first_candidate_read_from_the_cache_does_not_set_the_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default fit ran before: the first candidate's features come from the cache in a second, and 3x that
    would skip every candidate that has to extract. The budget waits for the first one that extracted."""
    from transferkit.backbones.spec import parse_backbone
    from transferkit.selection import backbone as selection

    now = [0.0]
    monkeypatch.setattr(selection.time, "perf_counter", lambda: now[0])
    clock = selection._Budget(None, began=0.0)
    cached = selection.Candidate("a", "single", ["a"], val_accuracy=0.9, seconds=1.0, extracted=0)
    now[0] = 1.0
    clock.record(cached)
    assert clock.seconds is None and clock.skip(parse_backbone("b"), scratch=False) is None
    now[0] = 31.0  # "b" extracted its features in 30 s
    clock.record(selection.Candidate("b", "single", ["b"], val_accuracy=0.8, seconds=30.0, extracted=100))
    assert clock.seconds == pytest.approx(3 * 31.0)
    assert clock.skip(parse_backbone("c"), scratch=False) is None  # 31 + 30 <= 93: scored
    now[0] = 70.0
    skipped = clock.skip(parse_backbone("c"), scratch=False)
    assert skipped is not None and "first candidate that extracted" in skipped.note


def test_a_candidate_with_no_readable_training_input_is_skipped_and_fit_says_why(cli, tmp_path: Path) -> None:
    """A manifest whose files cannot be read: each candidate is skipped with the reason in the table, and fit ends
    with a clear error naming the first unreadable file — not scikit-learn's "0 samples" from inside the scoring."""
    rows = ["path,label"]
    for i in range(12):
        bad = tmp_path / f"f{i}.png"
        bad.write_bytes(b"not an image at all")
        rows.append(f"{bad},{'ab'[i % 2]}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    code, output = cli("fit", manifest, "--backbone", "auto:hog", "--out", tmp_path / "run", "--no-cache")
    assert code != 0 and "0 of 8 training inputs readable" in output and "not an image" in output
    assert "0 sample(s)" not in output and "Traceback" not in output
