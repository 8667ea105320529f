"""What a probe fitted with a target keeps of its adaptation (`TransferClassifier.adaptation_`), typed.

The record holds named facts — the method asked for and the one applied, why, the target's size —
and `statistics`, the numbers of the alignment and of `auto`'s shift test (`Alignment.info`: James–Stein
factors, shrinkages, the test's p-value…; `block<i>_<name>` for the blocks of a concatenation, whose
count is the data's). In a bundle's metadata and a fit summary the statistics sit beside the named
facts in one flat JSON object, as they always have: `to_json` writes that form, `from_json` reads it
back (bundles written before this record was typed included).
"""

from __future__ import annotations

from typing import TypedDict, cast

from transferkit.jsontypes import JSONObject


class LatentDomainsRecord(TypedDict, total=False):
    """`auto`'s weighing of the target's latent domains against one alignment for the whole target, whose
    source moments are re-weighted to the target's estimated class proportions (`adapt.latent`, `adapt.priors`)."""

    kept: bool
    target_prior_shift: float  # total variation between the target's class proportions (EM) and the source's
    domains: int  # the clusters found (k by silhouette)
    information_whole: float  # the head's information maximization on the target, one alignment
    information_latent: float  # … each latent domain aligned on its own
    information_gain_lower: float  # the gain's one-sided 95% bootstrap lower bound: kept when above zero
    why: str


class AdaptationRecord(TypedDict, total=False):
    """A probe's adaptation: see the module docstring."""

    method: str  # --adapt-method as given
    why: str  # the rule behind the method (for auto: the shift test's outcome)
    target_inputs: int
    target_skipped: int
    applied: str  # what the model carries: the alignment's method, or "none"
    alignment: str  # the alignment's method, where one is applied
    statistics: dict[str, float]  # the alignment's and the shift test's numbers (`Alignment.info`)
    latent_domains: LatentDomainsRecord  # auto, a shift detected: the latent domains weighed
    pseudo_labelled_per_round: list[int]  # self-training
    seconds: float
    shift: JSONObject  # the shift diagnostic (`adapt.shift_diagnostic.shift_record`), with its map's points
    shift_seconds: float
    views_seconds: float  # DEV's choice of the training views, made only because a target was given


_NAMED = frozenset(AdaptationRecord.__annotations__) - {"statistics"}


def to_json(record: AdaptationRecord) -> JSONObject:
    """The flat JSON object of bundles and summaries: the named facts, then the statistics beside them."""
    out: JSONObject = {k: v for k, v in record.items() if k != "statistics"}
    out.update(record.get("statistics", {}))
    return out


def from_json(document: JSONObject | None) -> AdaptationRecord | None:
    """The record of a bundle's `adaptation` object: its named facts, and every other number as a statistic
    (anything else, e.g. an ensemble summary's note, is not part of a probe's record)."""
    if not document:
        return None
    record = cast(AdaptationRecord, {k: v for k, v in document.items() if k in _NAMED})
    statistics = {k: v for k, v in document.items()
                  if k not in _NAMED and isinstance(v, int | float) and not isinstance(v, bool)}
    if statistics:
        record["statistics"] = statistics
    return record
