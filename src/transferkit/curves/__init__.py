"""The data-efficiency curve: test accuracy against labels per class, transfer against from scratch.

Transfer learning claims that a pretrained model needs far fewer labels than training without it.
`curve(data)` measures that claim on the user's own data: for 1, 2, 5, 10, 20, 50 and all labelled
examples per class, several seeds each, it trains

- **transfer**: a linear probe on the modality's default pretrained backbone (EfficientNet-Lite0,
  all-MiniLM-L6-v2, GE2E), or the `backbone` given;
- **from scratch**: the same linear probe on the modality's from-scratch features
  (`transferkit.backbones.scratch`: HOG for images, MFCC statistics for audio, hashed n-grams for
  text), which learned nothing from other data;
- **fine-tuned** (only when asked, and while the budget lasts): LP-FT (`FinetunedClassifier`:
  the probe first, then the whole network) on the same pretrained backbone,

and scores every point on one fixed test split. One row per (method, shots, seed) comes back in a
`pandas.DataFrame`: accuracy, balanced accuracy, macro-F1, the number of training labels and the
seconds the point took.

How a point is made, and why:

- *One test split for every point*: stratified and seeded (`split_indices`), holding whole groups
  when the data names them, or the data's own `test` split when it has one. Every training subset
  is drawn from the rest (the *pool*), so no point ever trains on a test example.
- *Features are extracted once per backbone* for the pool and the test split together (and cached
  on disk); every probe point then fits a head on a subset of those rows, in well under a second.
- *Subsets are nested per seed*: each class's pool is shuffled once per seed and a point takes
  the first k, so the 5-shot subset holds the 2-shot one and the curve moves by added labels only.
- *The head's C is chosen inside the point*: from k ≥ 2 per class, 20% of the point's own subset
  (at least one example per class) is held out to choose C, and the head is then refitted on all
  k per class. A 1-shot point has nothing to hold out: it uses C = 1 (said in the notes).
- *Shot counts that do not fit the data* (the pool's per-class counts, after the test split): a
  shot count at or above the largest class takes every example of every class, so it is capped to
  the "all" point; one that is above the smallest class but below the largest would leave that
  class short, so the point is skipped for every method. Both are said in `frame.attrs["notes"]`.
- *Fine-tuning within a budget*: fine-tuned points run from the fewest labels up; one runs only
  when its estimated time (epochs × training examples ÷ images per second: 15 on a CPU and 400 on a
  GPU before the first point, then the rate measured on the points already run) fits in what is
  left of `budget` minutes; the others are skipped and said.
- *Ctrl-C keeps the finished points*: the frame of the points done so far is returned, with
  `frame.attrs["interrupted"] = True` (and a warning); `on_point` has seen each of them.

Same data, same arguments → the same curve (the accuracies; `seconds` is wall-clock).

`summarize(frame)` says how many labels per class transfer needs to match from scratch on all of
its labels, and from which shot count transfer stops paying. `save_curve` writes `curve.csv`,
`curve.png` and `curve.json` (the settings, notes and summary) atomically, into a folder that
`check_curve_folder` has allowed.
"""

from transferkit.curves.folder import (
                                       CURVE_CSV,
                                       CURVE_FILES,
                                       CURVE_FORMAT,
                                       CURVE_FORMAT_VERSION,
                                       CURVE_JSON,
                                       CURVE_PNG,
                                       check_curve_folder,
                                       mark_curve_folder,
                                       read_curve,
                                       write_csv,
)
from transferkit.curves.grid import (
                                       ADAPTED,
                                       ALL,
                                       DEFAULT_METHODS,
                                       DEFAULT_SHOTS,
                                       FINETUNED,
                                       METHODS,
                                       POINT_VAL_FRACTION,
                                       SCRATCH,
                                       TRANSFER,
                                       Plan,
                                       draw_subsets,
                                       make_plan,
                                       parse_seeds,
                                       parse_shots,
                                       plan_shots,
                                       point_validation,
)
from transferkit.curves.measure import COLUMNS, CurveRow, OnPoint, curve
from transferkit.curves.plot import plot_curve
from transferkit.curves.points import DEFAULT_FINETUNE_BUDGET, FINETUNE_IMAGES_PER_SECOND
from transferkit.curves.save import save_curve
from transferkit.curves.verdicts import MATCH_POINTS, Verdict, accuracy_grid, mean_table, summarize

__all__ = [
    "ADAPTED", "ALL", "COLUMNS",
    "CURVE_CSV", "CURVE_FILES", "CURVE_FORMAT", "CURVE_FORMAT_VERSION", "CURVE_JSON", "CURVE_PNG",
    "DEFAULT_FINETUNE_BUDGET", "DEFAULT_METHODS", "DEFAULT_SHOTS", "FINETUNED", "FINETUNE_IMAGES_PER_SECOND",
    "MATCH_POINTS", "METHODS", "POINT_VAL_FRACTION", "SCRATCH", "TRANSFER", "CurveRow", "OnPoint", "Plan", "Verdict",
    "accuracy_grid", "check_curve_folder", "curve", "draw_subsets", "make_plan", "mark_curve_folder", "mean_table",
    "parse_seeds", "parse_shots", "plan_shots", "plot_curve", "point_validation", "read_curve", "save_curve",
    "summarize", "write_csv",
]
