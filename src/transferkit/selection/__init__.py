"""What `fit` chooses for the user, in one place, working through the estimator contract only.

- `backbone`: `--backbone auto`, every sensible candidate (and their concatenations and ensembles)
  scored on validation with the real probe (`heads.train_probe`);
- `strategy`: `--strategy auto`, probe or fine-tune by a stated rule on data size and a time budget,
  the budget checked against the rate the fine-tuning estimator measures here (`training_rate`);
- `keep`: the better on validation of the probe and the fine-tuned network.

The CLI (`commands/fit.py`) maps options to estimators and passes them in; nothing here reads
options or asks an estimator its kind.
"""

from transferkit.selection.backbone import Candidate, Selection, pick_winner, select
from transferkit.selection.keep import keep_better
from transferkit.selection.strategy import StrategyDecision, choose_strategy, decide_strategy, too_little_data

__all__ = [
    "Candidate",
    "Selection",
    "StrategyDecision",
    "choose_strategy",
    "decide_strategy",
    "keep_better",
    "pick_winner",
    "select",
    "too_little_data",
]
