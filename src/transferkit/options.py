"""`FitOptions`: every option of `transferkit fit`, each declared once (`transferkit.params.Param`).

Each field carries its declaration: its default, its help text (the CLI flags are generated from
it), which strategies and modalities it applies to, and whether a `--resume` may change it. The
run's own settings (data, out, split, columns, report, export…) are declared here; the estimators'
parameters (head, seed, batch size, precision…) are declared in `transferkit.params`, where the
estimators' constructors read them too, and their fields here are made from those declarations.
Fine-tuning settings are the fields of `FinetuneConfig` (the `training` field), declared the same
way; the CLI exposes those with flags and a `--config` YAML file may set any of them.
Precedence: defaults < YAML < flags typed.

`resolve(options)` then fills in what the user left to us — the modality (from the column flags or
the data), the default backbone of that modality — and refuses, for every modality, an option that
does not apply (`--epochs` on a probe, `--fusion` on images, anything on `--strategy bogus`).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from transferkit.errors import ConfigError
from transferkit.finetune.config import FinetuneConfig
from transferkit.jsontypes import JSONObject
from transferkit.params import (
    ADAPT_METHOD,
    AS_JSON,
    AUGMENT,
    BATCH_SIZE,
    CACHE_DIR,
    CLASS_WEIGHT,
    ENCODING,
    ENGINE,
    FUSION,
    HEAD,
    LABEL_COLUMN,
    LONG_TEXT,
    NO_CACHE,
    PATH_COLUMN,
    PRECISION,
    SEED,
    SINGLE,
    STRICT,
    SUBSAMPLE,
    TTA,
    VIEW_MODALITIES,
    WEIGHTS,
    Param,
    declare,
    declared,
    use,
)

if TYPE_CHECKING:
    from transferkit.backbones.spec import BackboneSpec

STRATEGIES = ("probe", "finetune", "auto")
MODALITIES = ("image", "text", "audio", "table")
#: table column kinds → the option naming their columns
COLUMN_OPTIONS: dict[str, str] = {
    "image": "image_column", "text": "text_column", "audio": "audio_column",
    "numeric": "numeric_columns", "categorical": "categorical_columns",
}
_SINGLE = SINGLE


#: option values by flat name, as the CLI, a `--config` YAML file or a saved run record give them: untyped
#: until each is checked against its declaration (the dataclasses' fields are set from them by name)
OptionValues: TypeAlias = Mapping[str, Any]
#: the same values sorted into a dataclass's fields, set on it by keyword (`FitOptions(**fields)`)
_Fields: TypeAlias = dict[str, Any]

#: YAML spellings accepted for option names
_ALIASES = {"json": "as_json", "batch-size": "batch_size", "learning_rate": "lr"}
#: fine-tuning settings under the name they travel by in options, records and `explicit` (the field of
#: `FinetuneConfig` they set): `batch_augment` is fine-tuning's batch augmentation, `views` (a top-level
#: option) the probe's augmented views; two names for two things
_TRAINING_AS = {"batch_augment": "augment"}


def _routed(key: str, value: object) -> str:
    """The name `key` travels by. `augment`, the one name both once had, stays an alias: true/false (a YAML
    recipe's `augment: false`) is fine-tuning's `batch_augment`, a number (`--augment 2`) the probe's `views`;
    `training_augment` is how records before the split saved `batch_augment`."""
    if key == "augment":
        return "batch_augment" if isinstance(value, bool) else "views"
    return "batch_augment" if key == "training_augment" else key


#: Augmented training views a probe's head also learns from unless `--augment` says otherwise, on the
#: inputs views are made of. Under a shift they pay for the extraction they add (the training set's,
#: three times over): `benchmarks/unseen.py --rows default,augment` measured icons of unseen themes
#: 74.9% → 76.3% (26 s → 47 s) and words from unseen voices 37.6% → 41.1% (33 s → 81 s).
DEFAULT_VIEWS = 2


@dataclass(frozen=True)
class FitOptions:
    """A `transferkit fit` call: what to fit on, how, and where to save it."""

    # The run's own settings are declared here; the estimators' parameters (`transferkit.params`) are
    # fields made from their declarations (`use`): their defaults, help and rules are written there.
    data: Path = declare(Path("."), "Image folder (DATA/<class>/*, or DATA/{train,val,test}/<class>/*) or a "
                         "CSV/TSV/Parquet/JSONL manifest with path,label columns.", resumable=True, cli=False)
    out: Path | None = declare(None, "Where to save the trained model (default runs/<data name>).", "--out", "-o")
    backbone: str | None = declare(None, "Backbone name (see `transferkit models`). Default by modality: image "
                                   "efficientnet_lite0, text all-minilm-l6-v2+tfidf, audio ge2e+mfcc (fine-tuning: "
                                   "all-minilm-l6-v2, ge2e); for a table, KIND=NAME "
                                   "pairs (text=…,image=…,audio=…); 'auto' ranks the available ones and fits the "
                                   "best ('auto:NAME,NAME@random' names the candidates).", "--backbone", "-b")
    weights: str | None = use(WEIGHTS)
    head: str = use(HEAD)
    val: float = declare(0.15, "Validation fraction when DATA is not already split.", "--val")
    test: float = declare(0.15, "Test fraction when DATA is not already split.", "--test")
    seed: int = use(SEED)
    batch_size: int = use(BATCH_SIZE)
    precision: str = use(PRECISION)
    engine: str = use(ENGINE)
    class_weight: str = use(CLASS_WEIGHT)
    path_column: str = use(PATH_COLUMN)
    label_column: str = use(LABEL_COLUMN)
    group_column: str = declare("group", "Column naming each example's group (speaker, site, device, design): "
                                "validation then holds out whole groups, so it measures what an unseen group meets. "
                                "Read when the table has it; 'folder' takes DATA/<class>/<group>/…; 'none': split by "
                                "example.", "--group-column")
    encoding: str | None = use(ENCODING)
    modality: str | None = declare(None, "image, text, audio or table. Default: from the column flags, else from "
                                   "DATA (a folder of clips is audio).", "--modality")
    text_column: str | None = declare(None, "Column of texts. Alone: a text classifier; with other columns: a "
                                      "table.", "--text-column", modalities=("text", "table"))
    image_column: str | None = declare(None, "Column of image paths (a table when given with other columns).",
                                       "--image-column", modalities=("image", "table"))
    audio_column: str | None = declare(None, "Column of audio paths (a table when given with other columns).",
                                       "--audio-column", modalities=("audio", "table"))
    numeric_columns: str | None = declare(None, "Comma-separated numeric columns (standardised, with a missing "
                                          "mask).", "--numeric-columns", modalities=("table",))
    categorical_columns: str | None = declare(None, "Comma-separated categorical columns (one-hot; unseen → all "
                                              "zero).", "--categorical-columns", modalities=("table",))
    fusion: str = use(FUSION)
    long_text: str = use(LONG_TEXT)
    #: the probe's `augment`; None: `DEFAULT_VIEWS` where views are made (`resolve`), else none
    views: int | None = use(AUGMENT, default=None)
    tta: int = use(TTA)
    strict: bool = use(STRICT)
    overwrite: bool = declare(False, "Replace a trained model already at --out.", "--overwrite")
    cache_dir: Path | None = use(CACHE_DIR)
    no_cache: bool = use(NO_CACHE)
    as_json: bool = use(AS_JSON)
    report: bool = declare(False, "Also write RUN/report.html: plots of the data, the training, the errors and the "
                           "embeddings (`transferkit report RUN` writes it later).", "--report", resumable=True)
    export: bool = declare(False, "Also write RUN/onnx: the whole image model as one ONNX graph, checked against "
                           "PyTorch on the test images (`transferkit export RUN` does it later); `transferkit "
                           "predict RUN` then runs it without PyTorch.", "--export", modalities=("image",),
                           resumable=True)
    adapt_to: Path | None = declare(None, "Unlabelled inputs from where the model will be used (a folder of images "
                                    "or clips in any layout, a table with the input column, or texts one per line): "
                                    "the probe aligns their features to the training data's; fine-tuning trains on "
                                    "them beside the labelled batches (Minimum Class Confusion; AdaBN on them with "
                                    "--config adabn: true); a table model aligns each image, text and audio "
                                    "column's features. Labels in it are ignored.",
                                    "--adapt-to", modalities=(*SINGLE, "table"), strategies=("probe", "finetune"))
    adapt_method: str = use(ADAPT_METHOD)
    strategy: str = declare("probe", "probe (frozen backbone, head on cached features), finetune (train backbone + "
                            "head on Lightning), or auto (decide from data size and --budget; the rule is printed).",
                            "--strategy")
    budget: float | None = declare(None, "--strategy auto: training time budget in minutes (default 30); "
                                   "--backbone auto: minutes its candidates may take (default: 3x the first).",
                                   "--budget")
    #: `--backbone auto`'s (YAML only)
    subsample: int = use(SUBSAMPLE)
    config: Path | None = declare(None, "YAML file setting any fit option (flags given here override it).",
                                  "--config", resumable=True)
    resume: Path | None = declare(None, "finetune: continue the run in this --out folder from its last "
                                  "checkpoint.", "--resume", strategies=("finetune",), resumable=True)
    #: fine-tuning settings (flags: those of `FinetuneConfig`'s declarations that have one; YAML: every field)
    training: FinetuneConfig = field(default_factory=FinetuneConfig)
    #: the option names the user set (typed flags, YAML keys): only these can be "inapplicable"
    explicit: frozenset[str] = frozenset()
    #: `backbone` parsed (by `resolve`, once): what every later step reads instead of the text
    backbone_spec: BackboneSpec | None = field(default=None, compare=False, repr=False)

    # -- the declarations -----------------------------------------------------------------------------
    @staticmethod
    def declared() -> dict[str, Param[object]]:
        """Every top-level option (not `training`) and its declaration."""
        return declared(FitOptions)

    @staticmethod
    def option_types() -> dict[str, object]:
        """Each field's type, for generating flags. `BackboneSpec` stands in as `object`: it is no flag, and
        importing it would import torch (`--help` stays fast)."""
        return typing.get_type_hints(FitOptions, localns={"BackboneSpec": object})

    @staticmethod
    def known_names() -> frozenset[str]:
        return frozenset(FitOptions.declared()) | FinetuneConfig.field_names() | frozenset(_TRAINING_AS)

    @staticmethod
    def resumable_names() -> frozenset[str]:
        training = FinetuneConfig.resumable()
        return (frozenset(n for n, o in FitOptions.declared().items() if o.resumable) | training
                | frozenset(alias for alias, name in _TRAINING_AS.items() if name in training))

    # -- building -------------------------------------------------------------------------------------
    @classmethod
    def from_values(cls, values: OptionValues, *, explicit: frozenset[str] | None = None) -> FitOptions:
        """From flat `name → value` (CLI, YAML, a run record); fine-tuning names fill `training`.

        Unknown names are errors naming the close matches; `explicit` defaults to the names given.
        """
        top, training = _split_values(values, where="options")
        given = frozenset(_routed(k, v) for k, v in values.items()) if explicit is None else explicit
        return cls(**top, training=_training(FinetuneConfig(), training), explicit=given)

    def merged(self, values: OptionValues, *, explicit: bool = True) -> FitOptions:
        """These options with `values` laid over them (`explicit`: the user set them)."""
        top, training = _split_values(values, where="options")
        given = frozenset(_routed(k, v) for k, v in values.items()) if explicit else frozenset()
        return dataclasses.replace(self, **top, training=_training(self.training, training),
                                   explicit=self.explicit | given)

    def to_record(self) -> JSONObject:
        """Flat JSON-able values (saved with a run so that `--resume` rebuilds the same options)."""
        out: JSONObject = {}
        for name in self.declared():
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, Path) else value
        aliases = {name: alias for alias, name in _TRAINING_AS.items()}
        out.update({aliases.get(k, k): v for k, v in self.training.to_dict().items()})
        return out

    # -- derived --------------------------------------------------------------------------------------
    def value(self, name: str) -> object:
        """Any option by its flat name (a top-level field or a fine-tuning setting)."""
        if name in _TRAINING_AS:  # fine-tuning's setting of a name a top-level option also has
            return getattr(self.training, _TRAINING_AS[name])
        return getattr(self if name in FitOptions.declared() else self.training, name)

    def table_columns(self) -> dict[str, list[str]]:
        """Column kind → the columns named for it (empty lists for the kinds not given)."""
        return {kind: split_columns(getattr(self, option)) for kind, option in COLUMN_OPTIONS.items()}

    def groups(self) -> str | None:
        """The group column loaders take (None: split by example)."""
        return None if self.group_column.lower() == "none" else self.group_column

    def cache(self) -> Path | bool | None:
        """What estimators take as `cache_dir`: False with --no-cache, else the folder (None: default)."""
        return False if self.no_cache else self.cache_dir

    def out_folder(self) -> Path:
        if self.resume is not None:
            return Path(self.resume)
        if self.out is not None:
            return Path(self.out)
        data = Path(self.data)
        return Path("runs") / (data.stem if data.is_file() else data.resolve().name)


# -- building helpers ---------------------------------------------------------------------------------


def split_columns(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'price, weight' → ['price', 'weight']; a list is flattened the same way."""
    if value is None:
        return []
    parts = [value] if isinstance(value, str) else list(value)
    return [c.strip() for part in parts for c in str(part).split(",") if c.strip()]


def _split_values(values: OptionValues, *, where: str) -> tuple[_Fields, _Fields]:
    top_names, training_names = frozenset(FitOptions.declared()), FinetuneConfig.field_names()
    top: _Fields = {}
    training: _Fields = {}
    for key, value in values.items():
        key = _routed(key, value)
        if key in _TRAINING_AS:
            training[_TRAINING_AS[key]] = value
        elif key in top_names:
            top[key] = Path(value) if key in ("data", "out", "cache_dir", "config", "resume") and value is not None \
                else value
        elif key in training_names:
            training[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(top_names | training_names), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}: unknown option '{key}'.{hint}")
    return top, training


def _training(base: FinetuneConfig, values: OptionValues) -> FinetuneConfig:
    """`base` with fine-tuning settings replaced; CLI strings ('auto', '2', '3e-4') parsed to their types."""
    parsed = dict(values)
    if "lr" in parsed:
        parsed["lr"] = parse_lr(parsed["lr"])
    if isinstance(parsed.get("devices"), str) and parsed["devices"].isdigit():
        parsed["devices"] = int(parsed["devices"])
    if isinstance(parsed.get("lora_targets"), list):
        parsed["lora_targets"] = tuple(parsed["lora_targets"])
    return dataclasses.replace(base, **parsed)


def parse_lr(value: Any) -> float | str:
    if value == "auto":
        return "auto"
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--lr must be a number such as 1e-3, or 'auto'; got {value!r}") from None


def read_yaml(path: Path) -> JSONObject:
    """Options from a YAML file (a flat mapping of `fit` option → value), names checked."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"--config '{path}': no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"--config '{path}' must be a mapping of option: value; got {type(raw).__name__}")
    values = {_ALIASES.get(str(k), str(k).replace("-", "_")): v for k, v in raw.items()}
    _split_values(values, where=f"--config '{path}'")  # unknown names: an error naming the file
    return values


def from_sources(flags: OptionValues, *, data: Path) -> FitOptions:
    """defaults < `--config` YAML < `flags` (the options the user typed)."""
    options = FitOptions.from_values({"data": data})  # the data is always given: explicit
    config = flags.get("config")
    if config is not None:
        options = options.merged(read_yaml(Path(config)))
    return options.merged(flags)


# -- resolution -----------------------------------------------------------------------------------


def _audio_or_image(paths: Iterable[str | Path]) -> str:
    """'audio' when more of `paths` are audio files than images (by extension), else 'image'."""
    from transferkit.data.audio_clips import AUDIO_EXTENSIONS
    from transferkit.data.images import IMAGE_EXTENSIONS

    suffixes = [Path(p).suffix.lower() for p in paths]
    audio = sum(s in AUDIO_EXTENSIONS for s in suffixes)
    return "audio" if audio > sum(s in IMAGE_EXTENSIONS for s in suffixes) else "image"


def guess_folder_modality(folder: Path, limit: int = 500) -> str:
    """'audio' when a class folder tree holds more audio files than images, else 'image'."""
    return _audio_or_image(itertools.islice(folder.rglob("*"), limit))


def guess_manifest_modality(table: Path, path_column: str, encoding: str | None, limit: int = 500) -> str:
    """'audio' when a manifest's path column names more audio files than images (its first `limit` rows),
    else 'image' (also when the table cannot be read here: loading it says why)."""
    from transferkit.data.tables import read_table
    from transferkit.errors import DataError

    try:
        frame, _ = read_table(table, as_text=True, encoding=encoding)
    except (DataError, ConfigError):
        return "image"
    if path_column not in frame.columns:
        return "image"
    return _audio_or_image(str(p) for p in frame[path_column].dropna().head(limit))


def resolve_modality(options: FitOptions) -> str:
    """Column flags decide first: one text/image/audio column alone is that modality; several kinds, or
    numeric/categorical columns, a table. Then `--modality`; then the data (a folder of clips, or a manifest
    whose path column names clips, is audio)."""
    columns = options.table_columns()
    given = [kind for kind, cols in columns.items() if cols]
    asked = options.modality
    if asked is not None and asked not in MODALITIES:
        raise ConfigError(f"--modality must be one of {', '.join(MODALITIES)}; got {asked!r}")
    single = len(given) == 1 and given[0] in _SINGLE and len(columns[given[0]]) == 1
    if given and not single:
        modality = "table"
    elif single:
        modality = given[0]
    elif asked is not None:
        modality = asked
    else:
        data = Path(options.data)
        modality = (guess_folder_modality(data) if data.is_dir() else
                    guess_manifest_modality(data, options.path_column, options.encoding) if data.is_file() else "image")
    if asked is not None and asked != modality:
        raise ConfigError(f"--modality {asked} does not match the columns given ({', '.join(given)} → {modality}); "
                          "drop --modality or the column flags")
    return modality


def is_auto_backbone(options: FitOptions) -> bool:
    """`--backbone auto` (or `auto:NAME,NAME`) on resolved options."""
    return options.backbone_spec is not None and options.backbone_spec.kind == "auto"


def with_backbone(options: FitOptions, spec: BackboneSpec, weights: str | None) -> FitOptions:
    """The options with another backbone (the one `--backbone auto` chose), its text and spec together."""
    return dataclasses.replace(options, backbone=str(spec), backbone_spec=spec, weights=weights)


def resolve(options: FitOptions) -> FitOptions:
    """The options with the modality and default backbone filled in, every option checked to apply.

    A single-column manifest reads its inputs from that column (`--text-column text` → path_column
    'text'). Raises `ConfigError` naming the first option that is invalid or does not apply.
    """
    if options.strategy not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {options.strategy!r}")
    modality = resolve_modality(options)
    changes: _Fields = {"modality": modality}
    if modality in _SINGLE:
        from transferkit.backbones.registry import DEFAULT_BACKBONES, PRETRAINED_BACKBONES  # imports torch

        column = split_columns(getattr(options, COLUMN_OPTIONS[modality]))
        if column:
            changes["path_column"] = column[0]
        if options.backbone is None:  # a concatenation is a probe's: fine-tuning starts from one network
            defaults = DEFAULT_BACKBONES if options.strategy == "probe" else PRETRAINED_BACKBONES
            changes["backbone"] = defaults[modality]
    backbone = changes.get("backbone", options.backbone)
    if backbone is not None:  # the one place the --backbone text is parsed
        from transferkit.backbones.spec import parse_backbone

        changes["backbone_spec"] = parse_backbone(backbone)
        if modality in VIEW_MODALITIES and options.strategy in ("probe", "auto") and "views" not in options.explicit:
            changes["views"] = DEFAULT_VIEWS
    resolved = dataclasses.replace(options, **changes)
    _check_applicable(resolved)
    return resolved


def _check_applicable(options: FitOptions) -> None:
    """Every option the user set applies to this modality and strategy, for every modality."""
    modality, strategy = str(options.modality), options.strategy
    if modality == "table" and strategy == "finetune":
        raise ConfigError("a multimodal table trains on frozen encoders: use the default --strategy probe, "
                          "with --fusion concat (default) or --fusion gated (learned per-column gates)")
    if modality == "table" and is_auto_backbone(options):
        raise ConfigError("--backbone auto ranks the backbones of one input column; for a table name one per kind "
                          "(--backbone text=…,image=…)")
    declared = FitOptions.declared()
    strategies = {"probe", "finetune"} if strategy == "auto" else {strategy}
    if modality == "table":
        strategies = {"probe"}
    for name in sorted(options.explicit):
        flag = "--" + name.replace("_", "-") if name != "as_json" else "--json"
        if name in _TRAINING_AS:
            flag = f"{name} (augment: true/false, fine-tuning's batch augmentation)"
        if name in _TRAINING_AS or (name in FinetuneConfig.field_names() and name not in declared):
            if "finetune" not in strategies:
                raise ConfigError(f"{flag} applies to --strategy finetune; add --strategy finetune (the strategy "
                                  f"here, {strategy}, trains a head on frozen features)"
                                  if modality != "table" else
                                  f"{flag} applies to fine-tuning, which tables do not do (they train on frozen "
                                  "encoders)")
            continue
        option = declared[name]
        if len(option.flags) > 1 and all(f.startswith("--") for f in option.flags):  # --views / --augment
            flag = " / ".join(option.flags)
        if modality not in option.modalities:
            raise ConfigError(f"{flag} applies to {' / '.join(sorted(option.modalities))} data; this is {modality} "
                              "data (drop the flag, or set --modality)")
        if not strategies & option.strategies:
            raise ConfigError(f"{flag} applies to --strategy {' / '.join(sorted(option.strategies))}, not {strategy}")
    if "adapt_method" in options.explicit and options.adapt_to is None:
        raise ConfigError("--adapt-method chooses how to align to --adapt-to TARGET; give TARGET (unlabelled inputs "
                          "from where the model will be used), or drop --adapt-method")
    if "budget" in options.explicit and strategy != "auto" and not is_auto_backbone(options):
        raise ConfigError("--budget applies to --strategy auto (it decides between probe and fine-tuning) and to "
                          "--backbone auto (the candidates it scores)")


def resumed(options: FitOptions, run_options: OptionValues, folder: Path) -> FitOptions:
    """The options of the run in `folder` (saved at its start), with the resumable ones the user set now.

    Any other option set now must equal the saved one (compared after normalising: paths resolved,
    strings parsed); else a `ConfigError` names it.
    """
    known = FitOptions.known_names()
    saved = FitOptions.from_values({k: v for k, v in run_options.items() if k in known}, explicit=frozenset())
    if options.out is not None and _norm(options.out) != _norm(folder):
        raise ConfigError(f"--resume '{folder}' continues that run in its own folder; --out '{options.out}' "
                          "differs. Drop --out (the bundle is saved in the run folder)")
    resumable = FitOptions.resumable_names()
    for name in sorted(options.explicit - resumable - {"out", "strategy"}):
        now, then = options.value(name), saved.value(name)
        if _norm(now) != _norm(then):
            flag = "--" + name.replace("_", "-")
            if name in ("backbone", "weights"):
                raise ConfigError(f"--resume '{folder}' was trained with {name} '{then}', not '{now}'; refusing to "
                                  "continue it with another backbone")
            raise ConfigError(f"--resume '{folder}' continues the run as it was started; {flag} differs "
                              f"({then!r} then, {now!r} now). Drop the flag, or start a new run")
    if "strategy" in options.explicit and options.strategy != "finetune":
        raise ConfigError(f"--resume continues a fine-tuning run; --strategy {options.strategy} does not resume")
    carry = {name: options.value(name) for name in options.explicit & resumable if name != "resume"}
    return dataclasses.replace(saved.merged(carry), strategy="finetune", resume=folder, out=None,
                               explicit=options.explicit | {"resume"})


def _norm(value: object) -> object:
    """A value in the form two spellings of it share (paths resolved, numbers as float, lists as tuples)."""
    if isinstance(value, Path) or (isinstance(value, str) and ("/" in value or value.startswith("."))):
        return str(Path(value).expanduser().resolve())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value
