"""Fine-tuned heads whose spec does not start with a dense layer save and load like any other."""

from __future__ import annotations

import numpy as np

from transferkit.estimators.finetuned import FinetunedClassifier
from transferkit.finetune.config import FinetuneConfig


def test_head_starting_with_dropout_round_trips(image_folder, tmp_path) -> None:
    from transferkit.data import load_dataset

    data = load_dataset(image_folder)
    clf = FinetunedClassifier("efficientnet_lite0", weights="random", head="dropout:0.2, dense:N", batch_size=8,
                              training=FinetuneConfig(epochs=1, input_size=64), progress=False)
    clf.fit(data.items[:12], data.labels[:12])
    out = clf.save(tmp_path / "m")
    loaded = FinetunedClassifier.load(out)
    np.testing.assert_allclose(loaded.predict_proba(data.items[:3]), clf.predict_proba(data.items[:3]), atol=1e-5)
