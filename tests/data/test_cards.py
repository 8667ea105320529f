"""The demo's card set: built from a small fixture of SVG decks laid out as the Debian package lays
them out (rendered by the real resvg), it never puts a deck on both sides and renders no blank card."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from transferkit.data import cards
from transferkit.errors import DataError

pytestmark = pytest.mark.skipif(cards.resvg_binary() is None, reason="resvg (pip install resvg-cli) not installed")

SUIT_COLOURS = {"club": "#1a1a1a", "diamond": "#d01010", "heart": "#c02060", "spade": "#202080"}


def _deck_svg(deck: int, *, blank: bool = False, broken: bool = False) -> str:
    """A 13 x 4 sheet of 52 cards (70 x 100 units) with the package's ids ("queen_heart"); each card
    shows its suit's colour in a shape that depends on the deck, and as many bars as its rank."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="480" viewBox="0 0 1040 480">']
    for row, suit in enumerate(cards.SUITS):
        for col, rank in enumerate(cards.RANKS):
            x, y = 10 + 80 * col, 10 + 115 * row
            body = "#ffffff" if not blank else "#777777"
            w, h = (70, 100) if not (broken and col == 0 and row == 0) else (100, 30)
            shapes = [f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{body}" stroke="{body}"/>']
            if not blank:
                colour = SUIT_COLOURS[suit]
                if deck % 2:
                    shapes.append(f'<circle cx="{x + 35}" cy="{y + 30}" r="{8 + 2 * deck}" fill="{colour}"/>')
                else:
                    shapes.append(f'<rect x="{x + 25}" y="{y + 20}" width="{12 + 2 * deck}" height="20" '
                                  f'fill="{colour}"/>')
                shapes += [f'<rect x="{x + 8 + 4 * i}" y="{y + 70}" width="2" height="20" fill="{colour}"/>'
                           for i in range(col + 1)]
            parts.append(f'<g id="{rank}_{suit}">' + "".join(shapes) + "</g>")
    parts.append('<g id="back"><rect x="0" y="470" width="60" height="10" fill="#00f"/></g></svg>')
    return "".join(parts)


def write_fixture_package(root: Path, decks: dict[str, dict[str, bool]]) -> Path:
    """<root>/usr/share/carddecks/svg-<deck>/<deck>.svgz for each deck, as `dpkg-deb -x` leaves them."""
    for i, (name, flags) in enumerate(decks.items()):
        folder = root / cards.DECKS_DIR / f"svg-{name}"
        folder.mkdir(parents=True)
        (folder / f"{name}.svgz").write_bytes(gzip.compress(_deck_svg(i, **flags).encode(), mtime=0))
    return root


LABELLED = ("alpha", "beta", "blank")
SHIFTED = ("gamma", "delta", "broken")


@pytest.fixture(scope="module")
def fixture_package(tmp_path_factory) -> Path:
    return write_fixture_package(tmp_path_factory.mktemp("pkg"), {
        "alpha": {}, "beta": {}, "blank": {"blank": True}, "gamma": {}, "delta": {}, "broken": {"broken": True},
        "unused": {}})


@pytest.fixture(scope="module")
def built(fixture_package, tmp_path_factory) -> cards.CardSet:
    return cards.build_cards(tmp_path_factory.mktemp("set") / "cards", fixture_package, labelled=LABELLED,
                             shifted=SHIFTED)


def test_no_deck_on_both_sides_and_halves_by_suit(built) -> None:
    rows = built.rows
    train = {r["deck"] for r in rows if r["split"] == "train"}
    shifted = {r["deck"] for r in rows if r["split"] in ("test", "unlabelled")}
    assert train == {"alpha", "beta"} and shifted == {"gamma", "delta", "broken"}
    assert not train & shifted
    assert "unused" not in train | shifted
    for deck in ("gamma", "delta"):
        for suit in cards.SUITS:
            sides = [r["split"] for r in rows if r["deck"] == deck and r["label"] == suit]
            assert sorted(set(sides)) == ["test", "unlabelled"]
            assert abs(sides.count("test") - sides.count("unlabelled")) <= 1
    # the labelled table holds train and test only; the unlabelled folder is flat (no class folders)
    with built.labelled.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert {r["split"] for r in table} == {"train", "test"}
    assert len(list(built.unlabelled.iterdir())) == sum(r["split"] == "unlabelled" for r in rows)
    assert all(p.is_file() for p in built.unlabelled.iterdir())


def test_renders_no_blank_input_and_leaves_out_what_is_not_a_card(built) -> None:
    from PIL import Image

    assert any("deck blank left out" in n and "blank" in n for n in built.notes)
    assert [n for n in built.notes if "broken" in n] == ["broken 1_club left out: 192x172 px, not a card's shape (the "
                                                         "box cut it)"]
    assert not any(r["deck"] == "blank" for r in built.rows)
    assert sum(r["deck"] == "broken" for r in built.rows) == 51
    for row in built.rows:
        with Image.open(built.root / row["path"]) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        assert pixels.shape == (cards.IMAGE_SIZE, cards.IMAGE_SIZE, 3)
        assert pixels.std() > cards.MIN_PIXEL_STD, row["path"]


def test_the_same_set_on_every_build(built, fixture_package, tmp_path) -> None:
    again = cards.build_cards(tmp_path / "cards", fixture_package, labelled=LABELLED, shifted=SHIFTED)
    key = sorted((r["deck"], Path(r["path"]).name, r["split"], r["label"]) for r in again.rows)
    assert key == sorted((r["deck"], Path(r["path"]).name, r["split"], r["label"]) for r in built.rows)
    first = built.root / built.rows[0]["path"]
    assert first.read_bytes() == (again.root / built.rows[0]["path"]).read_bytes()


def test_a_deck_on_both_sides_is_refused() -> None:
    with pytest.raises(DataError, match="beta on both sides"):
        cards.assign_sides(["alpha", "beta"], labelled=("alpha", "beta"), shifted=("beta",))


def test_refuses_a_folder_it_did_not_write_and_a_missing_deck(fixture_package, tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(DataError, match=r"holiday\.jpg"):
        cards.build_cards(tmp_path / "mine", fixture_package, labelled=LABELLED, shifted=SHIFTED)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["holiday.jpg"]
    with pytest.raises(DataError, match="no deck nowhere"):
        cards.build_cards(tmp_path / "other", fixture_package, labelled=("nowhere",), shifted=SHIFTED)
