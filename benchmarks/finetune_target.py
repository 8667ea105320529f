"""Fine-tuning with unlabelled target inputs (issue 16, item 3): does MCC + AdaBN help under a shift?

Data: scikit-learn's digits as images (dark ink on white paper, `transferkit.commands.demo.write_digits`);
per class `--per-class` training and 5 validation images drawn with the seed. The target domain is
every other digit redrawn in another "camera": light ink on a dark, tinted, low-contrast background
(polarity and colour shift). The target images are cut in two halves by the seed: one half is given
unlabelled as the target, the other half is scored (never seen in any form). Rows, same seed, same
epochs: fine-tuning without the target; with it (MCC on target batches + AdaBN); MCC only; AdaBN only.

    PYTHONPATH=src .venv/bin/python benchmarks/finetune_target.py --epochs 4
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import _digits


def shifted_copy(items: list[str], root: Path) -> list[str]:
    """Each image redrawn in the target domain: inverted polarity, a blue-green tint, low contrast."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, item in enumerate(items):
        grey = np.asarray(Image.open(item).convert("L"), np.float32) / 255.0
        ink = 1.0 - grey  # light ink on dark paper
        rgb = np.stack([0.15 + 0.45 * ink, 0.25 + 0.55 * ink, 0.35 + 0.5 * ink], axis=-1)
        dest = root / f"{i:04d}.png"
        Image.fromarray((rgb * 255).clip(0, 255).astype(np.uint8)).save(dest)
        out.append(str(dest))
    return out


def main() -> None:
    p = _digits.parser(__doc__, out="runs/finetune-target", per_class=20, epochs=4)
    p.add_argument("--max-target", type=int, default=600, help="target images per half at most")
    args = p.parse_args()

    from transferkit.estimators.finetuned import FinetunedClassifier
    from transferkit.finetune.config import FinetuneConfig

    data, train, val, others, rng = _digits.digits_split(args.out, args.per_class, args.seed)
    rest = rng.permutation(others)
    half = min(len(rest) // 2, args.max_target)
    given, scored = rest[:half], rest[half: 2 * half]
    target_items = shifted_copy([data.items[i] for i in given], args.out / "target-given")
    scored_items = shifted_copy([data.items[i] for i in scored], args.out / "target-scored")
    scored_labels = [data.labels[i] for i in scored]
    tr, va = data.subset(train), data.subset(val)
    print(f"digits: train {len(tr)} ({args.per_class}/class), val {len(va)}; target: {len(target_items)} given "
          f"unlabelled, {len(scored_items)} scored")

    common = _digits.finetune_settings(args, num_workers=0)
    runs = {
        "fine-tuned, no target": (FinetuneConfig(**common), False),  # type: ignore[arg-type]
        "fine-tuned --adapt-to (MCC + AdaBN)": (FinetuneConfig(**common), True),  # type: ignore[arg-type]
        "MCC only": (FinetuneConfig(adabn=False, **common), True),  # type: ignore[arg-type]
        "AdaBN only": (FinetuneConfig(target_weight=0.0, **common), True),  # type: ignore[arg-type]
    }
    results: dict[str, dict[str, float]] = {}
    for name, (training, use_target) in runs.items():
        start = time.perf_counter()
        clf = FinetunedClassifier("efficientnet_lite0", batch_size=32, seed=args.seed, training=training,
                                  precision="fp32", progress=False)
        clf.fit(tr, X_val=va.items, y_val=va.labels, X_target=target_items if use_target else None)
        results[name] = {"target_accuracy": float(clf.score(scored_items, scored_labels)),
                         "source_val_accuracy": float(clf.score(va.items, va.labels)),
                         "seconds": time.perf_counter() - start}
        print(f"  {name:38s} target {results[name]['target_accuracy']:.2%}  source val "
              f"{results[name]['source_val_accuracy']:.2%}  ({results[name]['seconds']:.0f}s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
