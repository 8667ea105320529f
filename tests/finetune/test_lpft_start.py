"""LP-FT starts where its probe ended: on a small set where the probe is perfect, fine-tuning's
first validation score is the probe's (it once fell from 100% to 75%, then 25%)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _colours(root: Path, n_per_class: int = 8) -> list[Path]:
    """root/<colour>/<i>.jpg, noisy images whose dominant colour is the label (as tests/conftest.py makes)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}.items():
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = (np.array(colour)[None, None, :] + rng.normal(0, 45, (48, 40, 3))).clip(0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i:03d}.jpg", quality=90)
    return sorted(root.rglob("*.jpg"))


def test_the_first_validation_of_lp_ft_scores_as_its_probe(tmp_path: Path) -> None:
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig

    items = _colours(tmp_path / "data")  # 3 colours x 8 images, as in the issue
    labels = [p.parent.name for p in items]
    train = [i for i in range(len(items)) if i % 4]
    val = [i for i in range(len(items)) if not i % 4]
    clf = FinetunedClassifier("efficientnet_lite0", training=FinetuneConfig(epochs=2), progress=False)
    clf.fit([str(items[i]) for i in train], [labels[i] for i in train],
            X_val=[str(items[i]) for i in val], y_val=[labels[i] for i in val])
    report = clf.fit_report_
    probe = report.head_choice["val_accuracy"]
    assert probe == 1.0, report.timeline  # the set is one where the probe is perfect
    first = report.timeline[1][2]  # epoch 1: the first validation of the network being fine-tuned
    assert first == pytest.approx(probe), report.timeline
    assert all(accuracy == pytest.approx(probe) for _, _, accuracy in report.timeline[1:])
