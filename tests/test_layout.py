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
    # adapt/, engines/ and tests/test_features.py: other branches edit these tests now; mapped, not moved
    "adapt/selftrain.py": ("adapt/test_align.py", "self-training runs after alignment"),
    "engines/exported.py": ("commands/test_export_integrity.py", "the exported graphs' loading and integrity checks"),
    "engines/graphs.py": ("engines/test_engines.py", "one file for the engine layer (being reworked elsewhere)"),
    "engines/onnx_graph.py": ("engines/test_engines.py", "one file for the engine layer (being reworked elsewhere)"),
    "engines/quantize.py": ("engines/test_engines.py", "one file for the engine layer (being reworked elsewhere)"),
    "engines/run.py": ("engines/test_engines.py", "one file for the engine layer (being reworked elsewhere)"),
    "engines/select.py": ("engines/test_engines.py", "one file for the engine layer (being reworked elsewhere)"),
    # the backbone family behind one registry: built and checked through `create_backbone`
    "backbones/image.py": ("backbones/test_zoo.py", "the zoo's image networks recognise real photos"),
    "backbones/registry.py": ("backbones/test_contract.py", "every registered entry built by name, close matches"),
    "backbones/views.py": ("backbones/test_spec.py", "grids and concatenations are the spec's views"),
    "backbones/weights.py": ("backbones/test_contract.py", "local weight files: loaded, refused when pickled"),
    # the CLI: each command end to end through the real entry point, in tests/commands/test_cli.py
    "commands/_console.py": ("commands/test_cli.py", "what the commands print"),
    "commands/_flags.py": ("test_params.py", "the shared flags are generated from the declarations"),
    "commands/evaluate.py": ("commands/test_cli.py", "`evaluate` end to end"),
    "commands/fit.py": ("commands/test_fit_options.py", "`fit`'s flags, config and errors"),
    "commands/models.py": ("commands/test_cli.py", "`models` end to end"),
    "commands/predict.py": ("commands/test_cli.py", "`predict` end to end"),
    "commands/rank.py": ("ranking/test_rank_backbones.py", "`transferkit rank` beside the API it prints"),
    "commands/report.py": ("report/test_build.py", "`transferkit report` beside the report it builds"),
    "commands/serve.py": ("serve/test_app.py", "`transferkit serve` beside the app it runs"),
    # the curve package: one public function, `curve`, whose parts are tested through it
    "curves/folder.py": ("curves/test_measure.py", "where a curve may be written, through `curve`"),
    "curves/grid.py": ("curves/test_measure.py", "the grid, subsets and caps, through `curve`"),
    "curves/plot.py": ("curves/test_measure.py", "the picture, checked not blank, through `curve`"),
    "curves/points.py": ("curves/test_measure.py", "each point, through `curve`"),
    "curves/save.py": ("curves/test_measure.py", "the files' round trip"),
    "curves/verdicts.py": ("curves/test_measure.py", "the verdicts, on hand-made frames"),
    "data/dataset.py": ("data/test_folders.py", "the dataset a folder loads into"),
    "data/inputs.py": ("commands/test_cli.py", "what `predict` reads from its arguments"),
    "data/rows.py": ("data/test_tables.py", "rows of multimodal tables"),
    "errors.py": ("commands/test_cli.py", "the error family as the CLI shows it (exit 2, no traceback)"),
    "estimators/ensemble.py": ("estimators/test_transfer_estimator.py", "the estimator contract, ensembles included"),
    "estimators/finetuned.py": ("finetune/test_lpft.py", "fine-tuning's estimator, tested in tests/finetune/"),
    "estimators/load.py": ("estimators/test_transfer_estimator.py", "every estimator saved and loaded back"),
    "estimators/onnx_export.py": ("commands/test_export.py", "export end to end with its parity check"),
    "finetune/adabn.py": ("finetune/test_target.py", "AdaBN with MCC: fine-tuning towards unlabelled targets"),
    "finetune/callbacks.py": ("finetune/test_checkpoint.py", "the trainer's callbacks, through a killed, resumed run"),
    "finetune/config.py": ("test_params.py", "its fields are declarations"),
    "finetune/datamodule.py": ("finetune/test_target.py", "labelled and target batches"),
    "finetune/mcc.py": ("finetune/test_target.py", "MCC against its formula, with AdaBN"),
    "finetune/model.py": ("finetune/test_heads_cli.py", "the network of each head spec"),
    "finetune/module.py": ("finetune/test_peft.py", "the LightningModule's losses (L2-SP) and parameter groups"),
    "finetune/optim.py": ("finetune/test_freeze.py", "parameter groups follow freezing"),
    "finetune/regularizers.py": ("finetune/test_peft.py", "L2-SP beside PEFT"),
    "finetune/throughput.py": ("commands/test_strategy_auto.py", "the rate `--strategy auto` measures"),
    "finetune/trainer.py": ("finetune/test_checkpoint.py", "the trainer's checkpoints, kill and resume"),
    "heads/fusion.py": ("estimators/test_tabular.py", "gated fusion of a table's columns"),
    "heads/train.py": ("heads/test_head_spec.py", "each head spec trained on separable features"),
    "metrics.py": ("report/test_build.py", "the metrics the report shows"),
    "options.py": ("commands/test_fit_options.py", "fit's options from flags and --config"),
    "outputs.py": ("data/test_outputs_skipped.py", "transferkit's own outputs are never training data"),
    "packages.py": ("backbones/test_zoo.py", "the zoo's wheels found on disk"),
    "ranking/_linalg.py": ("ranking/test_transferability.py", "the contract over every estimator built on it"),
    "ranking/layers.py": ("ranking/test_rank_backbones.py", "ranking the layers of one backbone"),
    "ranking/nce.py": ("ranking/test_leep.py", "NCE and LEEP share their tests (source-label co-occurrence)"),
    "report/analysis.py": ("report/test_build.py", "the report's analyses, checked in the rendered report"),
    "report/examples.py": ("report/test_build.py", "examples shown as their modality"),
    "report/labelled.py": ("report/test_build.py", "the report on given labelled data"),
    "report/plots.py": ("report/test_build.py", "every plot of every kind, rendered"),
    "runtime.py": ("test_features.py", "device, precision and threads of an extraction (being edited elsewhere)"),
    "selection/keep.py": ("commands/test_strategy_auto.py", "keep the better on validation, through `--strategy auto`"),
    "serve/batcher.py": ("serve/test_app.py", "micro-batching, through the app"),
    "serve/decode.py": ("serve/test_app.py", "request bodies, through the app"),
    "serve/guard.py": ("serve/test_stalls.py", "stalled connections dropped"),
    "serve/limits.py": ("test_params.py", "the limits are declarations"),
    "serve/predictor.py": ("serve/test_app.py", "the model behind the app"),
    "serve/server.py": ("serve/test_stalls.py", "the server process, its shutdown and stalls"),
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
