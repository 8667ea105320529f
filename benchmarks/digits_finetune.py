"""Issue 3's figure: with 10 images per class of the digits demo, fine-tuned EfficientNet-Lite0
against the frozen probe and against the same architecture trained from scratch, same epochs.

Data: scikit-learn's digits written as images (`transferkit.demo.write_digits`); per class 10
training and 5 validation images drawn with the seed; every other image is the test set.

    .venv/bin/python benchmarks/digits_finetune.py --epochs 8
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _digits


def main() -> None:
    args = _digits.parser(__doc__, out="runs/digits-finetune", per_class=10, epochs=8).parse_args()

    from transferkit import TransferClassifier
    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig

    data, train, val, test, _ = _digits.digits_split(args.out, args.per_class, args.seed)
    tr, va, te = data.subset(train), data.subset(val), data.subset(test)
    print(f"digits: train {len(tr)} ({args.per_class}/class), val {len(va)}, test {len(te)}")

    results: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    probe = TransferClassifier(backbone="efficientnet_lite0", seed=args.seed, progress=False)
    probe.fit(tr, X_val=va.items, y_val=va.labels)
    results["frozen probe (linear head)"] = {
        "accuracy": probe.evaluate(te)["accuracy"],
        "seconds": time.perf_counter() - start,
    }
    common = _digits.finetune_settings(args, monitor="val_accuracy")
    runs = {  # (weights, training settings)
        "fine-tuned (full, layer decay 0.7)": (None, FinetuneConfig(freeze="full", layer_decay=0.7, **common)),  # type: ignore[arg-type]
        "fine-tuned (gradual unfreezing)": (None, FinetuneConfig(
            freeze="gradual", head_epochs=1, unfreeze_per_epoch=3, layer_decay=0.7, **common)),  # type: ignore[arg-type]
        "same architecture from scratch": ("random", FinetuneConfig(freeze="full", layer_decay=1.0, **common)),  # type: ignore[arg-type]
    }
    for name, (weights, training) in runs.items():
        start = time.perf_counter()
        clf = FinetunedClassifier("efficientnet_lite0", weights=weights, batch_size=16, seed=args.seed,
                                  training=training, progress=False)
        clf.fit(tr, X_val=va.items, y_val=va.labels)
        results[name] = {
            "accuracy": clf.evaluate(te)["accuracy"],
            "seconds": time.perf_counter() - start,
            "best_epoch": clf.fit_report_.best_epoch or 0,
        }
    print(
        f"\ntest accuracy on {len(te)} digits, {args.per_class} training images per class, "
        f"{args.epochs} epochs, lr {args.lr}, seed {args.seed}:"
    )
    for name, r in results.items():
        print(f"  {name:34s} {r['accuracy']:.2%}   ({r['seconds']:.0f}s)")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
