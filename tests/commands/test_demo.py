"""The embedded demo: the digits it writes, and the curve it prints (transfer against from scratch)."""

from __future__ import annotations

import pytest

from transferkit.commands.demo import few_per_class, write_digits
from transferkit.data import load_dataset


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory):
    """The digits demo's folder: its 1797 digits written once, at OUT/images, where the demo itself
    writes them (it finds them there and keeps them), for every test of this file."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    write_digits(out / "images")
    return out


@pytest.fixture(scope="module")
def digits(demo_out):
    """The 1797 digits (the tests only read them)."""
    return demo_out / "images"


@pytest.mark.slow
def test_digits_demo_reaches_the_readmes_figure(demo_out, tmp_path) -> None:
    """The README's figure, on the demo's own road (`transferkit demo digits`: its 1797 digits, its test
    split, its head): the probe on pretrained EfficientNet-Lite0 with all ≈144 labels per class (95.0%
    there, seed 0 within 94.4%–95.3%), and from scratch (HOG) above it. A smaller run would not check that
    figure: the extraction of the 1797 images is its cost, paid once (the curve's other points would
    only refit heads). It runs on OpenVINO, named (`demo --engine openvino`), which `auto` chooses for it on
    the 2-core machines measured here: the race `auto` runs first (each engine's warm-up and timed batches,
    ~18 batches of 32) would add a third to the extraction, and the engines agree on the features (the
    parity check still runs), so the figure is the same."""
    from rich.console import Console

    from transferkit.commands.demo import run_demo
    from transferkit.curves import SCRATCH, TRANSFER

    console = Console(record=True, width=160)
    frame = run_demo(out=demo_out, backbone="efficientnet_lite0", shots="all", seeds=1, console=console,
                     cache_dir=tmp_path / "cache", engine="openvino")
    text = " ".join(console.export_text().split())
    assert "efficientnet_lite0 1797 extracted" in text and "test accuracy (359 examples)" in text
    transfer = frame[frame["method"] == TRANSFER]["accuracy"]
    scratch = frame[frame["method"] == SCRATCH]["accuracy"]
    assert len(transfer) == len(scratch) == 1
    assert transfer.iloc[0] >= 0.93, text
    assert scratch.iloc[0] > transfer.iloc[0], text  # the counter-example: transfer does not pay on 8x8 digits


def test_few_per_class_is_balanced_and_seeded(digits) -> None:
    data = load_dataset(digits)
    picked = few_per_class(data, 3, seed=0)
    assert len(picked) == 30
    assert sorted({data.labels[i] for i in picked}) == data.classes
    assert picked == few_per_class(data, 3, seed=0) != few_per_class(data, 3, seed=1)


def test_write_digits_never_writes_into_a_users_folder(tmp_path) -> None:
    from transferkit.errors import BundleError

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"mine")
    with pytest.raises(BundleError, match=r"holiday\.jpg"):
        write_digits(tmp_path / "photos")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["holiday.jpg"]


@pytest.fixture(scope="module")
def few_digits_out(tmp_path_factory: pytest.TempPathFactory):
    """A demo folder whose digits the demo wrote, then cut to the first 12 of each class (120: under
    `AUTO_MIN_ITEMS`, no graph exported nor engines raced): the demo finds its marker there and keeps them,
    as it keeps a whole set."""
    out = tmp_path_factory.mktemp("few") / "demo"
    for folder in write_digits(out / "images").iterdir():
        if folder.is_dir():
            for extra in sorted(folder.iterdir())[12:]:
                extra.unlink()
    return out


def test_demo_prints_the_curve_and_where_the_picture_is(few_digits_out, tmp_path) -> None:
    """The demo's road on a short grid with a tiny random-init backbone, on 120 of its digits (the real one
    is `make demo`; the whole set on the pretrained backbone is the README's figure, above)."""
    import re

    from rich.console import Console

    from transferkit.commands.demo import run_demo

    demo_out = few_digits_out
    console = Console(record=True, width=160)
    frame = run_demo(out=demo_out, backbone="test_efficientnet", weights="random", shots="1,5", seeds=1,
                     console=console, cache_dir=tmp_path / "cache")
    text = " ".join(console.export_text().split())
    assert "1797 handwritten digits" in text and "from scratch: hog" in text
    assert "120 image inputs, 10 classes" in text and "test accuracy (24 examples)" in text
    assert re.search(r"transfer \(probe\) (stops paying|pays at every|pays up to|does not pay)", text)
    assert f"curve {demo_out / 'curve' / 'curve.png'}" in text
    assert (demo_out / "curve" / "curve.png").is_file() and len(frame) == 4
    # from scratch on HOG: far above chance (10%) with 5 digits per class
    assert frame[(frame["method"] == "from scratch") & (frame["shots"] == "5")]["accuracy"].iloc[0] > 0.6


@pytest.mark.slow
def test_cards_demo_end_to_end_on_fixture_decks(tmp_path) -> None:
    """The cards demo's whole road — decks rendered, curve, plain fit (+ adapted when `fit --adapt-to`
    exists), report, predictions — on six fixture decks, 2 cards per suit and side, and a tiny
    random-init backbone (the report's drawing takes most of its time)."""
    from rich.console import Console
    from tests.data.test_cards import write_fixture_package

    from transferkit.commands.demo import adaptation_available, run_cards_demo
    from transferkit.data.cards import resvg_binary

    if resvg_binary() is None:
        pytest.skip("resvg (pip install resvg-cli) not installed")
    source = write_fixture_package(tmp_path / "pkg", {d: {} for d in ("a", "b", "c", "d", "e", "f")})
    console = Console(record=True, width=200)
    result = run_cards_demo(out=tmp_path / "demo", backbone="test_efficientnet", weights="random", shots="1,all",
                            seeds=1, console=console, cache_dir=tmp_path / "cache", source=source,
                            labelled=("a", "b", "c", "d"), shifted=("e", "f"), sample=2)
    text = " ".join(console.export_text().split())
    assert "64 cards of 6 decks" in text and "labelled: 32 cards of a, b, c, d" in text
    assert "unseen decks: e, f — 16 held out with labels (to score), 16 without labels" in text
    assert "from scratch: hog" in text and f"curve {tmp_path / 'demo' / 'curve' / 'curve.png'}" in text
    assert len(result["curve"]) == 4 and (tmp_path / "demo" / "curve" / "curve.png").is_file()
    assert 0.0 <= result["plain"] <= 1.0 and f"on the 16 held-out cards of the unseen decks → {tmp_path}" in text
    if adaptation_available():
        assert result["adapted"] is not None and "plain →" in text and "adapted" in text
    else:
        assert result["adapted"] is None and "unfinished: the adapted fit needs" in text
    final = tmp_path / "demo" / ("model-adapted" if adaptation_available() else "model")
    assert (final / "report.html").is_file() and f"open {final / 'report.html'}" in text
    assert len(result["predictions"]) == 4 and text.count(", truly ") == 4  # two held-out cards of each unseen deck
    assert "demo done in" in text


def test_cards_demo_falls_back_to_the_digits_and_says_why(tmp_path, monkeypatch) -> None:
    from rich.console import Console

    from transferkit.commands import demo
    from transferkit.data import cards
    from transferkit.errors import DataError

    def no_network(cache: object) -> None:
        raise DataError("could not download the card decks: apt-get download: exit 100")

    ran: dict[str, object] = {}
    monkeypatch.setattr(cards, "fetch_package", no_network)
    monkeypatch.setattr(demo, "run_demo", lambda **kw: ran.update(kw) or "digits-frame")
    console = Console(record=True, width=200)
    result = demo.run_cards_demo(out=tmp_path / "demo", backbone="test_efficientnet", console=console)
    text = " ".join(console.export_text().split())
    assert "The card decks cannot be had here: could not download the card decks" in text
    assert "Running the digits demo instead" in text
    assert result == {"fallback": "digits", "curve": "digits-frame"} and ran["out"] == tmp_path / "demo" / "digits"
