"""The tests mirror `src/` file by file (issue 17, item 6).

Every module of `src/transferkit` with behaviour (a function or a class of its own; not `__init__`, not
`__main__`, not a module of constants or re-exports) has its test file at the mirrored path —
`transferkit/PKG/MOD.py` → `tests/PKG/test_MOD.py`, a leading underscore dropped — or an entry in
`ELSEWHERE` below naming the test file that exercises it and why that one. The map is checked both
ways: an entry must name an existing module and test file, and an entry whose module has gained its
mirrored test file must go.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "transferkit"
TESTS = Path(__file__).parent

#: module (relative to src/transferkit) → (the test file that exercises it, relative to tests/; why there)
ELSEWHERE: dict[str, tuple[str, str]] = {
    # the cache's content fingerprint, moved below the cache so that augmented views can be drawn from it
    "data/fingerprint.py": ("test_cache.py", "a replaced file of the same size and time, both ends of a large file"),
    # the backbone family behind one registry: built and checked through `create_backbone`
    "backbones/registry.py": ("backbones/test_contract.py", "every registered entry built by name, close matches"),
    # declarations: one contract test over every declared option (flags, config fields, server limits)
    "commands/_flags.py": ("test_params.py", "the shared flags are generated from the declarations"),
    "commands/serve.py": ("serve/test_server.py", "`transferkit serve` started, answering, stopped by SIGTERM"),
    "estimators/finetuned.py": ("finetune/test_lpft.py", "fine-tuning's estimator, tested in tests/finetune/"),
    "estimators/onnx_export.py": ("commands/test_export.py", "export end to end with its parity check"),
    "finetune/config.py": ("test_params.py", "its fields are declarations"),
    "finetune/throughput.py": ("commands/test_strategy_auto.py", "the rate `--strategy auto` measures"),
    "serve/limits.py": ("test_params.py", "the limits are declarations"),
}


def has_behaviour(module: Path) -> bool:
    """A function or a class defined in the module itself (constants and re-exports are not behaviour)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for node in tree.body)


def mirrored(module: Path) -> Path:
    """tests/PKG/test_MOD.py for src/transferkit/PKG/MOD.py (`_MOD` → `test_MOD.py`)."""
    relative = module.relative_to(SRC)
    return TESTS.joinpath(*relative.parts[:-1], f"test_{module.stem.lstrip('_')}.py")


def modules_with_behaviour() -> list[Path]:
    return [m for m in sorted(SRC.rglob("*.py")) if m.name not in ("__init__.py", "__main__.py") and has_behaviour(m)]


def test_every_module_with_behaviour_has_its_test_file_or_a_mapped_one() -> None:
    missing = [str(m.relative_to(SRC)) for m in modules_with_behaviour()
               if not mirrored(m).is_file() and str(m.relative_to(SRC)) not in ELSEWHERE]
    assert not missing, f"no tests/PKG/test_MOD.py for these modules, and no entry in ELSEWHERE: {missing}"


def test_the_map_names_real_files_and_only_modules_without_their_own_test_file() -> None:
    for module, (test_file, why) in ELSEWHERE.items():
        assert (SRC / module).is_file(), f"ELSEWHERE names {module}, which is not a module of src/transferkit"
        assert (TESTS / test_file).is_file(), f"ELSEWHERE maps {module} to {test_file}, which does not exist"
        assert why, module
        assert not mirrored(SRC / module).is_file(), (
            f"{module} has its own test file now ({mirrored(SRC / module).relative_to(TESTS)}): drop it from ELSEWHERE")


def test_a_module_without_its_test_file_is_found(tmp_path: Path) -> None:
    """The check itself: a module of functions has behaviour; one of constants does not."""
    (tmp_path / "lonely.py").write_text("def f():\n    return 1\n")
    (tmp_path / "consts.py").write_text('"""x"""\nfrom os import sep\nLIMIT = 3\n__all__ = ["sep"]\n')
    assert has_behaviour(tmp_path / "lonely.py") and not has_behaviour(tmp_path / "consts.py")
    assert mirrored(SRC / "serve" / "app.py") == TESTS / "serve" / "test_app.py"
    assert mirrored(SRC / "ranking" / "_linalg.py") == TESTS / "ranking" / "test_linalg.py"
