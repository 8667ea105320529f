"""Parameter declarations: each option of transferkit is one `Param`, written once.

A `Param` says everything about one option: its default, its help text, the rule its values meet,
the CLI flags that set it, which strategies and modalities it applies to, and whether a `--resume`
may change it. Everything else is generated from it or reads it:

- the estimators' typed constructors take their defaults from the `Param`s of this module
  (`batch_size: int = BATCH_SIZE.default`), and their scikit-learn `_parameter_constraints` are
  derived from them (`constraints_of`), so scikit-learn's own `_validate_params` checks them;
- `transferkit.options.FitOptions` (the `fit` command's flags and `--config` YAML keys) holds a
  field per option, made by `Param.field()`: the flags, their help and the YAML keys are generated
  from the declarations (`FinetuneConfig`'s fields are declared the same way);
- the other commands' shared flags (`commands/_flags.py`) and the server's settings
  (`serve/limits.py`) are declared and checked the same way.

One rule mechanism: a `Rule` is turned into scikit-learn's constraint format (`Rule.sklearn()`) and
checked by scikit-learn, either by an estimator's `_validate_params` or by `check_declared` for the
dataclasses of settings (fine-tuning, the server), which words the error as the CLI shows it.

This module imports neither torch nor scikit-learn (rules are converted on first use): building the
CLI's flags from it keeps `transferkit --help` fast.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeGuard, TypeVar

from transferkit.errors import ConfigError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
#: scikit-learn's `_parameter_constraints` entries: constraint objects, types, or its own strings
SklearnConstraint = object

STRATEGIES = frozenset({"probe", "finetune"})
MODALITIES = frozenset({"image", "text", "audio", "table"})
SINGLE = frozenset({"image", "text", "audio"})
#: inputs that augmented views are made of
VIEW_MODALITIES = frozenset({"image", "audio"})


# -- rules ---------------------------------------------------------------------------------------------


class Rule(ABC):
    """What values a parameter accepts; `expected` says it in words ("a positive integer")."""

    expected: str = ""

    @abstractmethod
    def sklearn(self) -> list[SklearnConstraint]:
        """The same rule in scikit-learn's `_parameter_constraints` format (a list: any one may hold)."""


@dataclass(frozen=True)
class Between(Rule):
    """A number (an integer when `integer`) in [low, high] (`closed` as scikit-learn's `Interval`)."""

    low: float | None
    high: float | None
    integer: bool = False
    closed: str = "both"
    expected: str = "a number in range"

    def sklearn(self) -> list[SklearnConstraint]:
        from numbers import Integral, Real

        kind = Integral if self.integer else Real
        return [_interval_class()(kind, self.low, self.high, closed=self.closed)]


@dataclass(frozen=True)
class OneOf(Rule):
    """One of the strings `choices`."""

    choices: tuple[str, ...]
    expected: str = ""

    def __post_init__(self) -> None:
        if not self.expected:
            object.__setattr__(self, "expected", " | ".join(self.choices))

    def sklearn(self) -> list[SklearnConstraint]:
        from sklearn.utils._param_validation import StrOptions

        return [StrOptions(set(self.choices))]


@dataclass(frozen=True)
class Satisfies(Rule):
    """A value `check` accepts (it may also raise a `ConfigError` that says more)."""

    check: Callable[[object], bool]
    expected: str

    def sklearn(self) -> list[SklearnConstraint]:
        return [_constraint_class()(self.check, self.expected)]


@dataclass(frozen=True)
class Types(Rule):
    """An instance of one of `types`; "boolean" and None are scikit-learn's own spellings."""

    types: tuple[type | str | None, ...]
    expected: str

    def sklearn(self) -> list[SklearnConstraint]:
        return list(self.types)


@functools.cache
def _constraint_class() -> type:
    """scikit-learn's `Options` subclassed into a check with words (made on first use: imports sklearn)."""
    from sklearn.utils._param_validation import Options

    class Constraint(Options):
        def __init__(self, check: Callable[[object], bool], expected: str) -> None:
            super().__init__(object, set())
            self.check, self.expected = check, expected

        def is_satisfied_by(self, val: object) -> bool:
            return bool(self.check(val))

        def __str__(self) -> str:
            return str(self.expected)

    return Constraint


@functools.cache
def _interval_class() -> type:
    """scikit-learn's `Interval`, refusing booleans (True is an `Integral` to Python, never a count here)."""
    from sklearn.utils._param_validation import Interval

    class NumberInterval(Interval):
        def is_satisfied_by(self, val: object) -> bool:
            return not isinstance(val, bool) and bool(super().is_satisfied_by(val))

    return NumberInterval


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


POSITIVE_INT = Between(1, None, integer=True, closed="left", expected="a positive integer")
NON_NEGATIVE_INT = Between(0, None, integer=True, closed="left", expected="an integer ≥ 0")
NON_NEGATIVE = Between(0, None, closed="left", expected="a number ≥ 0")
POSITIVE = Between(0, None, closed="neither", expected="a positive number")
UNIT = Between(0, 1, closed="right", expected="a number in (0, 1]")
FRACTION = Between(0, 1, closed="left", expected="a number in [0, 1)")
PROBABILITY = Between(0, 1, closed="both", expected="a probability")
FLAG = Types(("boolean",), "true or false")
NONE = Types((None,), "None")
NAME = Satisfies(_name, "a non-empty name")


def head_rule() -> Rule:
    """A head spec that parses (`linear`, `mlp:256`, `dense:512:relu, dense:N`); errors point at the bad layer."""

    def check(value: object) -> bool:
        if not _name(value):
            return False
        from transferkit.heads import parse_head  # the spec's grammar (imports torch: only when checked)

        parse_head(value)
        return True

    return Satisfies(check, "a head spec such as 'linear', 'mlp' or 'dense:512:relu, dense:N'")


# -- declarations -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Param(Generic[T_co]):
    """One option, declared once: default, help, rule, flags, where it applies, whether resume may change it."""

    default: T_co
    help: str
    #: the rules its values meet (any one may hold); () accepts anything
    rules: tuple[Rule, ...] = ()
    #: CLI flags (`fit`'s, generated from here); () for an option set only in Python or YAML
    flags: tuple[str, ...] = ()
    strategies: frozenset[str] = STRATEGIES
    modalities: frozenset[str] = MODALITIES
    resumable: bool = False
    #: False: a YAML-only option of `fit` (no flag)
    cli: bool = True

    def field(self, **default: Any) -> T_co:
        """A dataclass field with this default, carrying the declaration in its metadata (`"param"`).

        `default=` gives a settings class its own default where it resolves the value later (`fit`'s
        `views`: None, then by modality)."""
        default = default.get("default", self.default)
        if isinstance(default, list | dict | set):
            return dataclasses.field(default_factory=lambda: type(default)(default),  # type: ignore[return-value]
                                     metadata={"param": self})
        return dataclasses.field(default=default, metadata={"param": self})

    def sklearn(self) -> list[SklearnConstraint]:
        """The rule in scikit-learn's format (`_parameter_constraints[name]`)."""
        return [c for rule in self.rules for c in rule.sklearn()] if self.rules else ["no_validation"]

    @property
    def expected(self) -> str:
        return " or ".join(r.expected for r in self.rules if r is not NONE) or "anything"

    def accepts(self, value: object) -> bool:
        """Whether `value` meets the rule, checked by scikit-learn's constraint objects."""
        from sklearn.utils._param_validation import make_constraint

        if not self.rules:
            return True
        return any(make_constraint(c).is_satisfied_by(value) for c in self.sklearn())


def param(default: T, help: str, *flags: str, rules: Iterable[Rule] | Rule = (), strategies: Iterable[str] = STRATEGIES,
          modalities: Iterable[str] = MODALITIES, resumable: bool = False, cli: bool = True) -> Param[T]:
    """A `Param` (flags positional, as typer writes them)."""
    return Param(default, help, (rules,) if isinstance(rules, Rule) else tuple(rules), flags, frozenset(strategies),
                 frozenset(modalities), resumable, cli)


def declare(default: T, help: str, *flags: str, rules: Iterable[Rule] | Rule = (),
            strategies: Iterable[str] = STRATEGIES, modalities: Iterable[str] = MODALITIES, resumable: bool = False,
            cli: bool = True) -> T:
    """A dataclass field declared in place (an option of one settings class only): `param(...).field()`."""
    return param(default, help, *flags, rules=rules, strategies=strategies, modalities=modalities,
                 resumable=resumable, cli=cli).field()


def use(declaration: Param[T], **default: Any) -> T:
    """A settings dataclass's field for an option declared elsewhere: `declaration.field(**default)`."""
    return declaration.field(**default)


def declared(cls: type) -> dict[str, Param[object]]:
    """A dataclass's declared fields: name → `Param`."""
    return {f.name: f.metadata["param"] for f in dataclasses.fields(cls) if "param" in f.metadata}


def check_declared(obj: object, *, flag_names: bool = False) -> None:
    """Every declared field of a settings dataclass meets its rule; else a `ConfigError` naming the first
    that does not ("epochs must be a positive integer; got 0"; `flag_names`: "--max-batch must be …")."""
    for name, declaration in declared(type(obj)).items():
        value = getattr(obj, name)
        if not declaration.accepts(value):
            shown = "--" + name.replace("_", "-") if flag_names else name
            raise ConfigError(f"{shown} must be {declaration.expected}; got {value!r}")


def constraints_of(cls: type, overrides: Mapping[str, Param[object]] | None = None,
                   ) -> dict[str, list[SklearnConstraint]]:
    """scikit-learn's `_parameter_constraints` of an estimator, derived from its constructor: each parameter's
    `Param` is the one named in `overrides`, else the `ESTIMATOR_PARAMS` declaration of that name. A parameter
    with no declaration is an error at import: every parameter is declared."""
    table = dict(params_of(cls, overrides))
    return {name: declaration.sklearn() for name, declaration in table.items()}


def params_of(cls: type, overrides: Mapping[str, Param[object]] | None = None) -> dict[str, Param[object]]:
    """An estimator's parameters (its `__init__` signature's names, in order) → their declarations."""
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]  # type: ignore[misc]
    mapping = {**ESTIMATOR_PARAMS, **(overrides or {})}
    missing = [n for n in names if n not in mapping]
    if missing:
        raise TypeError(f"{cls.__name__}: parameters without a declaration: {', '.join(missing)}")
    return {n: mapping[n] for n in names}


# -- the estimators' parameters ---------------------------------------------------------------------------

#: `adapt_method`'s choices (`transferkit.adapt.align` implements them)
ADAPT_METHODS = ("auto", "standardize", "coral", "self-training", "mcc", "none")
PROBE_PRECISIONS = ("auto", "bf16", "fp32", "int8")
FUSIONS = ("concat", "gated")

BACKBONE: Param[str] = param("efficientnet_lite0", "Backbone name (see `transferkit models`).", rules=NAME)
WEIGHTS: Param[str | None] = param(
    None, "Backbone weights: a local file, 'random' (control), or 'hub' (online). Default: the backbone's own "
    "pretrained weights.", "--weights", rules=(NONE, NAME), modalities=SINGLE)
HEAD: Param[str] = param("linear", "Head: 'linear', 'mlp', 'mlp:HIDDEN', or layers like "
                         "'dense:512:relu, dropout:0.2, dense:N'.", "--head", rules=head_rule())
CLASS_WEIGHT: Param[str] = param("auto", "auto (balanced if the largest class is ≥3x the smallest), balanced, none.",
                                 "--class-weight", rules=OneOf(("auto", "balanced", "none")))
VAL_FRACTION: Param[float] = param(0.15, "Fraction of the training data held out to choose the head's settings "
                                   "when no validation data is given.",
                                   rules=Between(0, 0.9, closed="left", expected="a number in [0, 0.9)"))
SEED: Param[int] = param(0, "Random seed (same seed, same data → same result).", "--seed", rules=NON_NEGATIVE_INT)
#: 32: measured faster than 64 or 128 for extraction on these CPUs (caches)
BATCH_SIZE: Param[int] = param(32, "Inputs per forward pass.", "--batch-size", rules=POSITIVE_INT, resumable=True)
PRECISION: Param[str] = param("auto", "auto (bf16 where the CPU/GPU runs it natively), bf16, fp32 (finetune: also "
                              "fp16).", "--precision", rules=OneOf(PROBE_PRECISIONS))
ENGINE: Param[str] = param("auto", "How extraction runs: auto (the fastest installed engine whose features agree "
                           "with PyTorch on the first batch; it says which), torch, onnxruntime or openvino.",
                           "--engine", rules=OneOf(("auto", "torch", "onnxruntime", "openvino")), resumable=True)
LONG_TEXT: Param[str] = param("truncate", "Texts longer than the model's window: truncate (counted, reported) or "
                              "chunk (embed overlapping chunks and average).", "--long-text",
                              rules=OneOf(("truncate", "chunk")), modalities=("text", "table"),
                              strategies=("probe",))
_VIEW_COUNT = Between(0, 16, integer=True, expected="an integer in [0, 16]")
#: `fit`'s option of this name is `views` (`--views`, and `--augment` as before)
AUGMENT: Param[int] = param(0, "probe: also train the head on the features of N augmented views of each training "
                            "input (images: crops, flips, colour jitter, grayscale; audio: speed, pitch, noise, "
                            "gain). Default: 2 for images and audio (0: extract the training set once, faster). "
                            "--augment N is the same option.", "--views", "--augment", rules=_VIEW_COUNT,
                            modalities=VIEW_MODALITIES, strategies=("probe",))
TTA: Param[int] = param(0, "probe: average predictions over each input and N augmented views of it (test-time "
                        "augmentation).", "--tta", rules=_VIEW_COUNT, modalities=VIEW_MODALITIES,
                        strategies=("probe",))
CACHE_DIR: Param[None] = param(None, "Feature cache folder (default ~/.cache/transferkit).", "--cache-dir",
                              rules=Satisfies(lambda v: v is None or isinstance(v, bool | str | os.PathLike)
                                              or hasattr(v, "folder"), "a folder, a FeatureCache, or False (no "
                                              "cache)"), resumable=True)
STRICT: Param[bool] = param(False, "Fail on unreadable inputs instead of skipping them.", "--strict", rules=FLAG,
                            strategies=("probe",))
PROGRESS: Param[bool] = param(True, "Show progress bars.", rules=FLAG)
DEVICE: Param[str | None] = param(None, "torch device to run on (default: the best available).", rules=(NONE, NAME))
ADAPT_METHOD: Param[str] = param(
    "auto", "With --adapt-to: auto (per-domain standardisation, the shift shrunk by James-Stein: nothing moves where "
    "the target differs by no more than its sampling noise), standardize (plain), coral (CORAL with shrunk "
    "covariances), self-training (CORAL + confident target pseudo-labels), mcc (James-Stein "
    "standardisation, then the linear head fine-tuned with Minimum Class Confusion on the target) or none.",
    "--adapt-method",
    rules=OneOf(ADAPT_METHODS), modalities=(*SINGLE, "table"), strategies=("probe",))
ADAPT_BATCH: Param[bool] = param(False, "Standardise each batch given to predict with its own statistics (test-time "
                                 "adaptation to a new domain).", rules=FLAG)
FUSION: Param[str] = param("concat", "Tables: concat (late fusion of the column embeddings) or gated (learned "
                           "per-column gates; encoders stay frozen).", "--fusion", rules=OneOf(FUSIONS),
                           modalities=("table",), strategies=("probe",))

# -- run settings several commands share ------------------------------------------------------------

PATH_COLUMN: Param[str] = param("path", "Manifest column with input paths.", "--path-column", rules=NAME)
LABEL_COLUMN: Param[str] = param("label", "Manifest column with labels.", "--label-column", rules=NAME)
ENCODING: Param[str | None] = param(None, "How a manifest is encoded when it is not UTF-8 (e.g. cp1252, latin-1).",
                                    "--encoding", rules=(NONE, NAME))
NO_CACHE: Param[bool] = param(False, "Do not read or write the feature cache.", "--no-cache", rules=FLAG,
                              resumable=True)
AS_JSON: Param[bool] = param(False, "Print JSON instead of tables.", "--json", rules=FLAG, resumable=True)

SUBSAMPLE: Param[int] = param(1000, "Rank backbones on a stratified subsample of N samples (0: all).",
                               rules=NON_NEGATIVE_INT, cli=False)

#: every estimator parameter that several estimators share or `fit` exposes, by the name it has in the
#: constructors; a constructor's parameter of another name is declared in its own module (`overrides`)
ESTIMATOR_PARAMS: dict[str, Param[object]] = {
    "backbone": BACKBONE, "weights": WEIGHTS, "head": HEAD, "class_weight": CLASS_WEIGHT,
    "val_fraction": VAL_FRACTION, "seed": SEED, "batch_size": BATCH_SIZE, "precision": PRECISION, "engine": ENGINE,
    "long_text": LONG_TEXT, "augment": AUGMENT, "tta": TTA, "cache_dir": CACHE_DIR, "strict": STRICT,
    "progress": PROGRESS, "device": DEVICE, "adapt_method": ADAPT_METHOD, "adapt_batch": ADAPT_BATCH,
    "fusion": FUSION,
}
