"""`FitOptions`: every option declared once, the CLI generated from it, and every option that does
not apply refused for every modality — before any data is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferkit.commands import app
from transferkit.errors import ConfigError
from transferkit.options import FitOptions, from_sources, read_yaml, resolve, resumed


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """A tiny dataset of each modality, as the `fit` arguments that select it."""
    root = tmp_path_factory.mktemp("modalities")
    images = root / "images"
    for cls in ("a", "b"):
        (images / cls).mkdir(parents=True)
        (images / cls / "1.png").write_bytes(b"")
    clips = root / "clips"
    for cls in ("a", "b"):
        (clips / cls).mkdir(parents=True)
        (clips / cls / "1.wav").write_bytes(b"")
    texts = root / "texts.csv"
    texts.write_text("text,label\nhello,a\nworld,b\n")
    table = root / "table.csv"
    table.write_text("title,price,label\nhello,1,a\nworld,2,b\n")
    return {
        "image": [str(images)],
        "audio": [str(clips)],
        "text": [str(texts), "--text-column", "text"],
        "table": [str(table), "--text-column", "title", "--numeric-columns", "price"],
    }


MODALITIES = ("image", "text", "audio", "table")


@pytest.mark.parametrize("modality", MODALITIES)
def test_unknown_strategy_is_refused_for_every_modality(cli, datasets: dict[str, list[str]], modality: str,
                                                        tmp_path: Path) -> None:
    code, message = cli("fit", *datasets[modality], "--strategy", "bogus", "--out", str(tmp_path / "m"))
    assert code == 2 and "--strategy must be one of probe, finetune, auto; got 'bogus'" in message
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("flag", [("--epochs", "5"), ("--freeze", "gradual"), ("--lr", "1e-3")])
def test_fine_tune_only_flags_are_refused_on_a_probe(cli, datasets: dict[str, list[str]], modality: str,
                                                     flag: tuple[str, str], tmp_path: Path) -> None:
    code, message = cli("fit", *datasets[modality], *flag, "--out", str(tmp_path / "m"))
    assert code == 2 and flag[0] in message and ("finetune" in message or "fine-tuning" in message)


@pytest.mark.parametrize("modality", ("image", "text", "audio"))
def test_table_only_flags_are_refused_elsewhere(cli, datasets: dict[str, list[str]], modality: str,
                                                tmp_path: Path) -> None:
    code, message = cli("fit", *datasets[modality], "--fusion", "gated", "--out", str(tmp_path / "m"))
    assert code == 2 and "--fusion applies to table data" in message and modality in message


def test_a_table_does_not_fine_tune_and_budget_needs_auto(cli, datasets: dict[str, list[str]], tmp_path: Path) -> None:
    code, message = cli("fit", *datasets["table"], "--strategy", "finetune", "--out", str(tmp_path / "m"))
    assert code == 2 and "frozen encoders" in message
    code, message = cli("fit", *datasets["image"], "--budget", "5", "--out", str(tmp_path / "m"))
    assert code == 2 and "--budget applies to --strategy auto" in message
    code, message = cli("fit", *datasets["image"], "--long-text", "chunk", "--out", str(tmp_path / "m"))
    assert code == 2 and "--long-text applies to table / text data" in message


def test_yaml_accepts_every_option_the_cli_takes(tmp_path: Path) -> None:
    config = tmp_path / "fit.yaml"
    config.write_text("text_column: body\nmodality: text\nfusion: concat\nlong_text: chunk\nbudget: 12\n"
                      "strategy: auto\nepochs: 3\nlayer_decay: 0.5\njson: true\n")
    options = from_sources({"config": config}, data=tmp_path / "reviews.csv")
    assert (options.text_column, options.modality, options.long_text, options.budget) == ("body", "text", "chunk", 12)
    assert (options.training.epochs, options.training.layer_decay, options.as_json) == (3, 0.5, True)
    flags = {f.name for f in dataclasses.fields(FitOptions) if "option" in f.metadata}
    keys = {k for k in read_yaml(config)}
    assert keys <= FitOptions.known_names() and flags <= FitOptions.known_names()
    # flags beat YAML; the text column travels as the text column (the path column only reads it)
    options = from_sources({"config": config, "text_column": "title", "strategy": "probe", "budget": None},
                           data=tmp_path / "reviews.csv")
    resolved = resolve(dataclasses.replace(options, explicit=frozenset({"text_column"})))
    assert resolved.text_column == "title" and resolved.path_column == "title" and resolved.modality == "text"


def test_unknown_yaml_option_names_the_file_and_close_matches(tmp_path: Path) -> None:
    config = tmp_path / "fit.yaml"
    config.write_text("text_colum: body\n")
    with pytest.raises(ConfigError, match=r"fit.yaml': unknown option 'text_colum'. Did you mean text_column"):
        read_yaml(config)


def test_cli_flags_are_the_declared_options() -> None:
    """The flags are generated from the declarations: every declared CLI option is a flag of `fit`."""
    result = CliRunner().invoke(app, ["fit", "--help"], terminal_width=200)
    for name, option in FitOptions.declared().items():
        if option.cli:
            assert option.flags[0] in result.output, name
    for flag in ("--epochs", "--lr", "--freeze", "--peft", "--devices", "--accelerator"):
        assert flag in result.output


def test_resume_compares_normalised_values_and_refuses_another_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    saved = FitOptions.from_values({"data": tmp_path / "d", "strategy": "finetune", "cache_dir": str(tmp_path / "c"),
                                    "epochs": 2, "lr": 0.001}).to_record()
    same = from_sources({"resume": run, "cache_dir": Path(tmp_path / "c"), "lr": "1e-3", "epochs": 4},
                        data=tmp_path / "d")
    options = resumed(same, saved, run)
    assert options.training.epochs == 4 and options.strategy == "finetune" and options.out_folder() == run
    with pytest.raises(ConfigError, match=r"--out .* differs"):
        resumed(from_sources({"resume": run, "out": tmp_path / "other"}, data=tmp_path / "d"), saved, run)
    with pytest.raises(ConfigError, match="--seed differs"):
        resumed(from_sources({"resume": run, "seed": 7}, data=tmp_path / "d"), saved, run)


def test_a_probe_takes_augment_and_tta_where_views_exist(cli, datasets: dict[str, list[str]], tmp_path: Path) -> None:
    """`--augment` is the probe's views (fine-tuning's own augmentation shares the name): it was refused
    as a fine-tuning flag on every probe."""
    for modality in ("image", "audio"):
        options = resolve(from_sources({"augment": 2, "tta": 1}, data=Path(datasets[modality][0])))
        assert (options.views, options.tta, options.value("views")) == (2, 1, 2), modality
    code, message = cli("fit", *datasets["text"], "--augment", "2", "--out", str(tmp_path / "m"))
    assert code == 2 and "--views / --augment applies to audio / image data" in message
    code, message = cli("fit", *datasets["image"], "--augment", "2", "--strategy", "finetune",
                        "--out", str(tmp_path / "m"))
    assert code == 2 and "--views / --augment applies to --strategy probe" in message


def test_augment_true_or_false_is_fine_tunings_switch_and_a_number_the_probes_views(tmp_path: Path) -> None:
    """The Keras recipe's `augment: false` used to land on the probe's views, so its fine-tuning trained on
    augmented batches after all; a record keeps both apart, so that `--resume` reads back the same."""
    recipe = Path(__file__).parents[1] / "examples" / "keras_vgg16.yaml"
    options = from_sources({"config": recipe}, data=tmp_path / "photos")
    assert options.training.augment is False and options.views is None
    assert "batch_augment" in options.explicit and "views" not in options.explicit
    resolved = resolve(dataclasses.replace(options, data=tmp_path / "photos", modality="image"))
    again = FitOptions.from_values(resolved.to_record(), explicit=frozenset())
    assert again.training.augment is False and again.views == resolved.views
    probe = from_sources({"augment": 3}, data=tmp_path / "photos")
    assert probe.views == 3 and probe.training.augment is True
    with pytest.raises(ConfigError, match="fine-tuning's batch augmentation"):
        resolve(from_sources({"augment": False, "modality": "image"}, data=tmp_path / "photos"))


def test_views_and_batch_augment_are_two_names_and_old_records_still_read(tmp_path: Path) -> None:
    """The probe's views and fine-tuning's batch augmentation have a name each; `augment` stays an alias of
    both (by its value) and records written before the split (`augment`: N, `training_augment`) read the same."""
    options = from_sources({"views": 1, "batch_augment": False}, data=tmp_path / "photos")
    assert options.views == 1 and options.training.augment is False
    old = FitOptions.from_values({"augment": 4, "training_augment": False}, explicit=frozenset())
    assert old.views == 4 and old.training.augment is False
    record = old.to_record()
    assert record["views"] == 4 and record["batch_augment"] is False and "augment" not in record
    declared = FitOptions.declared()["views"]
    assert FitOptions().views is None and "Default: 2 for images and audio" in declared.help  # None: by modality
    assert declared.flags == ("--views", "--augment")


def test_the_modality_of_a_manifest_is_read_from_its_paths(tmp_path: Path) -> None:
    """A manifest whose path column names clips is audio, as a folder of clips is; of images (or
    unreadable here), image; `--modality` still decides when given."""
    clips, images = tmp_path / "clips.csv", tmp_path / "images.csv"
    clips.write_text("path,label\n" + "".join(f"/data/c{i}.wav,a\n" for i in range(5)) + "/data/x.png,b\n")
    images.write_text("file,label\n/data/x.jpg,a\n/data/y.png,b\n")
    assert resolve(from_sources({}, data=clips)).modality == "audio"
    assert resolve(from_sources({"path_column": "file"}, data=images)).modality == "image"
    assert resolve(from_sources({}, data=images)).modality == "image"  # no 'path' column: as before
    assert resolve(from_sources({"modality": "image"}, data=clips)).modality == "image"
