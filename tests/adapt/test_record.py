"""`adapt.record`: a probe's adaptation record, typed in memory and flat in bundles and summaries."""

from __future__ import annotations

from transferkit.adapt.record import AdaptationRecord, from_json, to_json


def _flat() -> dict[str, object]:
    """A concatenation's record as bundles have always stored it: named facts and per-block numbers side by side."""
    return {"method": "auto", "why": "auto: shifted", "target_inputs": 40, "target_skipped": 1,
            "applied": "standardize", "alignment": "standardize+standardize",
            "block0_mean_shrinkage": 0.25, "block1_mean_shrinkage": 0.5,
            "shift_detected": 1.0, "source_inputs": 120, "seconds": 0.4,
            "shift": {"verdict": "far", "map": {"panels": []}}, "shift_seconds": 0.1}


def test_a_flat_record_reads_into_named_facts_and_statistics_and_writes_back_the_same() -> None:
    record = from_json(_flat())
    assert record is not None
    assert record["applied"] == "standardize" and record["target_inputs"] == 40
    assert record["statistics"] == {"block0_mean_shrinkage": 0.25, "block1_mean_shrinkage": 0.5,
                                    "shift_detected": 1.0, "source_inputs": 120}
    assert record["shift"]["verdict"] == "far"
    assert to_json(record) == _flat()


def test_what_is_not_a_probes_record_is_left_out() -> None:
    record = from_json({**_flat(), "members": "each member aligned its own features", "flag": True})
    assert record is not None and "members" not in record and "flag" not in record.get("statistics", {})
    assert from_json(None) is None and from_json({}) is None


def test_a_record_without_statistics_writes_its_facts_alone() -> None:
    record = AdaptationRecord(method="none", why="asked for none", target_inputs=5, target_skipped=0, applied="none")
    assert to_json(record) == dict(record)
    assert from_json(to_json(record)) == record
