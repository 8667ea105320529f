"""Model cards quote labels and column names as text: nothing a user named renders as HTML or a link."""

from __future__ import annotations

import pytest

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = ["<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "![x](http://evil/x.png)",
           "<script>alert(1)</script>", "a|b", "**bold** _it_ `code`", "line\nbreak # heading"]


def _html(card: str) -> str:
    return markdown_it.MarkdownIt("commonmark").render(card)  # raw HTML allowed, as a model hub renders it


def test_labels_in_a_model_card_are_text() -> None:
    from transferkit.bundle import model_card

    manifest = {"task": "classification", "labels": [*HOSTILE, "cat"],
                "training": {"n_train": 10, "n_val": 2, "seed": 0},
                "metrics": {"n": 4, "accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5}}
    card = model_card(manifest, title="transferkit model: <b>x</b> + linear head", facts=["- fact"],
                      unit="examples", usage="Load with `transferkit predict`.")
    page = _html(card)
    for tag in ("<img", "<script", "<a ", "<b>", "<strong", "<em", "<h2"):
        assert tag not in page, (tag, page)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "cat" in page
    assert "[click](javascript:alert(1))" in page  # shown as typed, not as a link
    assert "<code>transferkit predict</code>" in page  # our own markup still renders
