"""Fine-tuned heads whose spec does not start with a dense layer save and load like any other."""

from __future__ import annotations

import numpy as np

from transferkit.finetune import FinetuneConfig, FinetunedClassifier


def test_head_starting_with_dropout_round_trips(image_folder, tmp_path) -> None:
    from transferkit.data import load_dataset

    data = load_dataset(image_folder)
    cfg = FinetuneConfig(backbone="efficientnet_lite0", weights="random", head="dropout:0.2, dense:N", epochs=1,
                         batch_size=8, input_size=64, progress=False)
    clf = FinetunedClassifier(cfg, progress=False).fit(data.items[:12], data.labels[:12])
    out = clf.save(tmp_path / "m")
    loaded = FinetunedClassifier.load(out)
    np.testing.assert_allclose(loaded.predict_proba(data.items[:3]), clf.predict_proba(data.items[:3]), atol=1e-5)
