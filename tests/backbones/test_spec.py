"""The `--backbone` language: one parser, one printer, round trips, errors that name the bad part."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferkit.backbones.spec import BackboneSpec, parse_backbone, parse_backbone_list
from transferkit.errors import ConfigError

_NAME = st.from_regex(r"[a-z][a-z0-9_.\-]{0,14}", fullmatch=True).filter(
    lambda n: n not in ("auto",) and not difflib.get_close_matches(n, ["logmel"], cutoff=0.75))
_WEIGHTS = st.one_of(st.none(), st.sampled_from(["random", "hub", "pretrained"]),
                     st.from_regex(r"[a-z0-9_./\-]{1,20}\.safetensors", fullmatch=True))


@st.composite
def _models(draw: st.DrawFn) -> BackboneSpec:
    return BackboneSpec("model", draw(_NAME), draw(st.one_of(st.none(), st.integers(1, 4))), draw(st.booleans()),
                        draw(_WEIGHTS))


@st.composite
def _specs(draw: st.DrawFn) -> BackboneSpec:
    kind = draw(st.sampled_from(["model", "concat", "ensemble", "auto", "table"]))
    if kind == "model":
        return draw(_models())
    if kind == "concat":
        return BackboneSpec("concat", members=tuple(draw(st.lists(_models(), min_size=2, max_size=3))))
    if kind == "ensemble":
        return BackboneSpec("ensemble", members=tuple(draw(st.lists(_models(), min_size=2, max_size=3))))
    if kind == "auto":
        return BackboneSpec("auto", members=tuple(draw(st.lists(_models(), max_size=3))))
    kinds = draw(st.lists(st.sampled_from(["image", "text", "audio"]), min_size=1, max_size=3, unique=True))
    return BackboneSpec("table", members=tuple(draw(_models()) for _ in kinds), kinds=tuple(kinds))


@settings(max_examples=300, deadline=None)
@given(_specs())
def test_print_then_parse_is_the_same_spec(spec: BackboneSpec) -> None:
    assert parse_backbone(str(spec)) == spec


@pytest.mark.parametrize(("text", "expected"), [
    ("efficientnet_lite0", BackboneSpec("model", "efficientnet_lite0")),
    ("efficientnet_lite0:grid2", BackboneSpec("model", "efficientnet_lite0", grid=2)),
    ("efficientnet_lite0+logmel", BackboneSpec("model", "efficientnet_lite0", logmel=True)),
    ("resnet18@random", BackboneSpec("model", "resnet18", weights="random")),
    ("efficientnet_lite0+logmel@random", BackboneSpec("model", "efficientnet_lite0", logmel=True, weights="random")),
    ("a+b+logmel", BackboneSpec("concat", members=(BackboneSpec("model", "a"),
                                                   BackboneSpec("model", "b", logmel=True)))),
    ("a@random+b:grid2", BackboneSpec("concat", members=(BackboneSpec("model", "a", weights="random"),
                                                         BackboneSpec("model", "b", grid=2)))),
    ("ensemble:a, b@random", BackboneSpec("ensemble", members=(BackboneSpec("model", "a"),
                                                               BackboneSpec("model", "b", weights="random")))),
    ("auto", BackboneSpec("auto")),
    ("auto:a,b:grid2,", BackboneSpec("auto", members=(BackboneSpec("model", "a"), BackboneSpec("model", "b", grid=2)))),
    ("text=all-minilm-l6-v2, image=efficientnet_lite0",
     BackboneSpec("table", kinds=("text", "image"),
                  members=(BackboneSpec("model", "all-minilm-l6-v2"), BackboneSpec("model", "efficientnet_lite0")))),
    ("hf-hub:org/model", BackboneSpec("model", "hf-hub:org/model")),
])
def test_every_form_parses(text: str, expected: BackboneSpec) -> None:
    assert parse_backbone(text) == expected


def test_a_list_of_candidates() -> None:
    assert [str(s) for s in parse_backbone_list("a, b@random,,c:grid3")] == ["a", "b@random", "c:grid3"]


@pytest.mark.parametrize(("text", "bad_part", "suggestion"), [
    ("esemble:a,b", "esemble:", "ensemble:"),
    ("efficientnet_lite0+logmell", "+logmell", "+logmel"),
    ("imag=efficientnet_lite0,text=x", "imag=", "image="),
    ("efficientnet_lite0:gridx", ":gridx", ":grid2"),
    ("a++b", "a++b", "+"),
    ("resnet18@", "resnet18@", "@random"),
    ("a+@random", "'a+@random'", "nothing before it"),
    ("ensemble:a", "ensemble:a", "two or more"),
    ("auto:auto:a", "auto:a", "nested"),
])
def test_errors_name_the_bad_part_and_the_close_match(text: str, bad_part: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_backbone(text)
    assert bad_part in str(err.value) and suggestion in str(err.value)


def test_the_registry_reads_weights_from_the_name() -> None:
    from transferkit.backbones import create_backbone

    assert "random" in create_backbone("resnet18@random").weights_id
    with pytest.raises(Exception, match="give one"):
        create_backbone("resnet18@random", weights="hub")


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the parser is asked to read from now on, wherever a module bound `parse_backbone` (or
    `parse_backbone_list`) by name: those bindings are patched too."""
    import sys

    from transferkit.backbones import spec as spec_module

    texts: list[str] = []
    real = {"parse_backbone": spec_module.parse_backbone, "parse_backbone_list": spec_module.parse_backbone_list}

    def counting(name: str):  # type: ignore[no-untyped-def]
        def parse(text):  # type: ignore[no-untyped-def]
            if isinstance(text, str):
                texts.append(text)
            return real[name](text)
        return parse

    for module in [m for n, m in sys.modules.items() if n.startswith("transferkit")]:
        for name, function in real.items():
            if getattr(module, name, None) is function:
                monkeypatch.setattr(module, name, counting(name))
    return texts


@pytest.mark.parametrize("text", ["test_efficientnet:grid2@random+hog", "ensemble:test_efficientnet@random,hog"])
def test_fit_parses_the_backbone_text_once(text: str, image_folder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`transferkit fit --backbone TEXT` reads TEXT once (`options.resolve`); the estimator, the registry, its
    resolvers and the concatenation's or ensemble's parts all take the parsed spec."""
    from tests.conftest import run_cli

    import transferkit.commands  # noqa: F401  (the CLI's modules, so that their bindings are counted too)
    from transferkit.backbones import registry  # noqa: F401

    texts = _count_parses(monkeypatch)
    code, output = run_cli("fit", image_folder, "--backbone", text, "--views", "0", "--engine", "torch",
                           "--out", tmp_path / "run", "--json")
    assert code == 0, output
    assert texts == [text]


def test_an_unknown_part_is_named_with_its_close_matches(image_folder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import run_cli

    code, output = run_cli("fit", image_folder, "--backbone", "test_efficientnet@random+hogg", "--out", tmp_path / "m")
    assert code == 2 and "unknown backbone 'hogg'" in output and "Did you mean: hog" in output, output
