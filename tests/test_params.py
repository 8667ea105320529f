"""One declaration per option (issue 17, item 1), counted.

Every `fit` flag and `--config` key is one `transferkit.params.Param`; the CLI's help is the
declaration's; the estimators' constructors take their defaults from the declarations and their
scikit-learn constraints are derived from them; no default of a declared option is written again
as a literal in the settings classes, the commands or the estimators' constructors.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import transferkit
from transferkit import params
from transferkit.finetune.config import FinetuneConfig
from transferkit.options import FitOptions
from transferkit.params import ESTIMATOR_PARAMS, declared, params_of
from transferkit.serve.limits import ServeOptions

SRC = Path(transferkit.__file__).parent


def _estimators() -> list[type]:
    from transferkit.estimators import (
        EnsembleClassifier,
        FinetunedClassifier,
        TabularTransferClassifier,
        TransferClassifier,
    )

    return [TransferClassifier, TabularTransferClassifier, EnsembleClassifier, FinetunedClassifier]


def _fit_click_options() -> dict[str, Any]:
    """`fit`'s click options by parameter name, as the real CLI builds them."""
    import typer.main

    from transferkit.commands import app

    command = typer.main.get_command(app)
    fit = command.commands["fit"]  # type: ignore[attr-defined]
    return {p.name: p for p in fit.params if p.param_type_name == "option"}


# -- fit: flags and YAML keys --------------------------------------------------------------------------


def test_every_fit_flag_is_one_declaration_and_shows_its_help() -> None:
    top, training = FitOptions.declared(), declared(FinetuneConfig)
    options = _fit_click_options()
    for name, option in options.items():
        owners = [d for d in (top.get(name), training.get(name)) if d is not None]
        assert len(owners) == 1, f"--{name}: {len(owners)} declarations"
        declaration = owners[0]
        assert option.help == declaration.help, name
        assert set(option.opts) == set(declaration.flags), name
    # and every declaration with flags is a flag (nothing declared and forgotten)
    flagged = {n for n, d in top.items() if d.flags and d.cli} | {n for n, d in training.items() if d.flags}
    assert flagged == set(options)


def test_no_flag_is_declared_twice() -> None:
    flags = [f for table in (FitOptions.declared(), declared(FinetuneConfig)) for d in table.values()
             for f in d.flags]
    assert [f for f, n in Counter(flags).items() if n > 1] == []


def test_every_yaml_key_is_one_declaration() -> None:
    top, training = set(FitOptions.declared()), set(declared(FinetuneConfig))
    assert top & training == set()  # fine-tuning's `augment` travels as `batch_augment`; `views` is the probe's
    assert {f.name for f in dataclasses.fields(FinetuneConfig)} == training  # every field declared
    assert FitOptions.known_names() == top | training | {"batch_augment"}


def test_fit_options_of_estimator_parameters_are_the_estimators_declarations() -> None:
    """`FitOptions` does not re-declare an estimator parameter: its field carries the very `Param`."""
    top = FitOptions.declared()
    shared = {name: d for name, d in ESTIMATOR_PARAMS.items() if name in top and name not in FIT_OWN}
    assert len(shared) == 13  # and `views`, below
    for name, declaration in shared.items():
        assert top[name] is declaration, name
    assert top["views"] is params.AUGMENT  # the probe's `augment`, under its `fit` name


#: `fit`'s `--backbone` is the backbone language (`A+B`, `auto:…`, `text=…,image=…`, default by modality),
#: which `BackboneSpec` turns into the estimators' `backbone` / `backbones` / `*_backbone`: its own option
FIT_OWN = {"backbone"}


# -- estimators ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", _estimators(), ids=lambda c: c.__name__)
def test_constructor_defaults_and_constraints_come_from_the_declarations(cls: type) -> None:
    table = params_of(cls, cls._param_overrides)  # type: ignore[attr-defined]
    signature = inspect.signature(cls.__init__)
    for name, declaration in table.items():
        assert signature.parameters[name].default == declaration.default, f"{cls.__name__}.{name}"
    assert list(cls._parameter_constraints) == list(table)  # type: ignore[attr-defined]
    cls()._validate_params()  # scikit-learn's own check accepts every declared default


def test_a_parameter_without_a_declaration_is_refused() -> None:
    class Undeclared:
        def __init__(self, batch_size: int = 32, frobnicate: int = 3) -> None: ...

    with pytest.raises(TypeError, match="frobnicate"):
        params_of(Undeclared)


# -- no default written twice -------------------------------------------------------------------------

#: options whose default is declared once → that default
DECLARED = {name: d.default for name, d in ESTIMATOR_PARAMS.items() if name not in FIT_OWN} | {
    name: d.default for name, d in {"path_column": params.PATH_COLUMN, "label_column": params.LABEL_COLUMN,
                                    "encoding": params.ENCODING, "no_cache": params.NO_CACHE,
                                    "as_json": params.AS_JSON, "subsample": params.SUBSAMPLE}.items()}
#: classes whose fields are settings (not records of what happened, such as `FitReport.precision`)
SETTINGS_CLASSES = {"FitOptions", "ExtractOptions", "FinetuneConfig", "ServeOptions"}


def _copies(name: str, node: ast.AST | None) -> bool:
    """Whether `node` writes the declared default of option `name` as a literal (a different literal, such
    as serve's `precision=None` "as the bundle predicts", is another choice, not a copy)."""
    if name not in DECLARED or node is None:
        return False
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return False
    return bool(value == DECLARED[name] and type(value) is type(DECLARED[name]))


def literal_defaults(path: Path) -> list[str]:
    """Declared defaults written again as literals, in function signatures and settings classes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            found += [f"{path.name}:{d.lineno} {a.arg}" for a, d in pairs if _copies(a.arg, d)]
        elif isinstance(node, ast.ClassDef) and node.name in SETTINGS_CLASSES:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    value = item.value
                    if isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("declare", "param"):
                        value = value.args[0] if value.args else None
                    if _copies(item.target.id, value):
                        found.append(f"{path.name}:{item.lineno} {item.target.id}")
    return found


def _settings_and_commands() -> list[Path]:
    return [SRC / "options.py", SRC / "features.py", SRC / "finetune" / "config.py", SRC / "serve" / "limits.py",
            *sorted((SRC / "commands").glob("*.py")), *sorted((SRC / "estimators").glob("*.py")),
            *sorted((SRC / "selection").glob("*.py")), *sorted((SRC / "curves").glob("*.py")),
            SRC / "ranking" / "rank_backbones.py", SRC / "engines" / "exported.py"]


def test_no_declared_default_is_written_again() -> None:
    assert [hit for path in _settings_and_commands() for hit in literal_defaults(path)] == []


def test_the_copy_finder_finds_a_copy(tmp_path: Path) -> None:
    """The check above can fail: a second `batch_size = 32` is found, in a signature and in a class."""
    copy = tmp_path / "copy.py"
    copy.write_text("class FitOptions:\n    seed: int = declare(0, 'x')\n\n"
                    "def f(x, *, batch_size: int = 32, precision='auto', device: str = 'cpu'): ...\n")
    assert literal_defaults(copy) == ["copy.py:2 seed", "copy.py:4 batch_size", "copy.py:4 precision"]


# -- the other settings: server, shared command flags ---------------------------------------------------


def test_serve_flags_are_generated_from_the_declarations() -> None:
    import typer.main

    from transferkit.commands import app

    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    options = {p.name: p for p in serve.params}
    for name, declaration in declared(ServeOptions).items():
        if declaration.flags:
            assert options[name].help == declaration.help and options[name].default == declaration.default
    assert {f.name for f in dataclasses.fields(ServeOptions)} == set(declared(ServeOptions))


@pytest.mark.parametrize(("settings", "name", "bad", "words"), [
    (ServeOptions, "max_batch", 0, "--max-batch must be at least 1; got 0"),
    (FinetuneConfig, "epochs", True, "epochs must be a positive integer; got True"),
    (FinetuneConfig, "lr", -1.0, "lr must be a positive number or 'auto'; got -1.0"),
])
def test_settings_are_checked_by_their_declared_rules(settings: Any, name: str, bad: Any, words: str) -> None:
    from transferkit.errors import ConfigError

    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        settings(**{name: bad}).validate()


def test_the_fine_tuning_config_record_names_every_field_once() -> None:
    """`FinetuneConfigRecord` (what `to_dict` returns, what bundles and run.json keep) lists exactly the
    dataclass's fields: a field added to one and not the other fails here."""
    from transferkit.finetune.config import FinetuneConfigRecord

    fields = [f.name for f in dataclasses.fields(FinetuneConfig)]
    assert list(FinetuneConfigRecord.__annotations__) == fields
    config = FinetuneConfig(lora_targets=("query", "value"), epochs=3)
    record = config.to_dict()
    assert list(record) == fields and record["lora_targets"] == ["query", "value"]
    assert FinetuneConfig.from_dict(dict(record)) == config
