"""`BackboneSpec`: the one parser and the one printer of the `--backbone` language.

    spec     := "auto" [":" models] | "ensemble:" models | pairs | model
    models   := model ("," model)*
    pairs    := KIND "=" model ("," KIND "=" model)*          (a table: KIND is image, text or audio)
    model    := part ("+" part)*                              (two or more parts: a concatenation)
    part     := NAME [":grid" N] ["+logmel"] ["@" WEIGHTS]

`NAME` is a registry name, a timm name, `hf-hub:org/model` or a local folder. `:gridN` adds the image
backbone's feature map pooled over an N×N grid (`backbones.views`); `+logmel` reads audio through an
image backbone (`backbones.audio`); `@WEIGHTS` is `random`, `hub`, `pretrained` or a weight file (with
no `+` or `,` in its path), for the part it follows. `parse_backbone(text)` → a `BackboneSpec`;
`str(spec)` prints it back, so `parse_backbone(str(spec)) == spec`. Every module that needs the parts
of a backbone name asks this one; none splits the string itself. A malformed name raises
`ConfigError` naming the bad part and the close matches.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

from transferkit.errors import ConfigError

AUTO = "auto"
ENSEMBLE = "ensemble"
GRID = ":grid"
LOGMEL = "+logmel"
TABLE_KINDS = ("image", "text", "audio")
SpecKind = Literal["model", "concat", "ensemble", "auto", "table"]

_GRID_RE = re.compile(r"^(?P<name>.+?):grid(?P<cells>\w*)$")
_KIND_RE = re.compile(r"^\s*(?P<kind>[A-Za-z_]+)\s*=(?P<rest>.*)$")
_PREFIX_RE = re.compile(r"^\s*(?P<prefix>[A-Za-z_]+)\s*:(?P<rest>.*)$", re.DOTALL)


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed `--backbone`: one model, a concatenation, an ensemble, `auto` candidates, or a table's encoders.

    `model`: `name` with its `grid`, `logmel` and `weights`; `concat`/`ensemble`/`auto`/`table`: `members`
    (models; for `auto` none means the modality's default candidates), and for a table the column
    `kinds` of the members, in order.
    """

    kind: SpecKind
    name: str = ""
    grid: int | None = None
    logmel: bool = False
    weights: str | None = None
    members: tuple[BackboneSpec, ...] = ()
    kinds: tuple[str, ...] = ()

    # -- printing -------------------------------------------------------------------------------------
    def __str__(self) -> str:
        if self.kind == "model":
            return self.architecture + (f"@{self.weights}" if self.weights is not None else "")
        if self.kind == "concat":
            return "+".join(str(m) for m in self.members)
        if self.kind == "ensemble":
            return f"{ENSEMBLE}:" + ",".join(str(m) for m in self.members)
        if self.kind == "auto":
            return AUTO + (":" + ",".join(str(m) for m in self.members) if self.members else "")
        return ",".join(f"{k}={m}" for k, m in zip(self.kinds, self.members, strict=True))

    @property
    def architecture(self) -> str:
        """A model without its weights: what the registry builds (`efficientnet_lite0:grid2+logmel`)."""
        if self.kind == "concat":
            return str(self)
        if self.kind != "model":
            raise ConfigError(f"'{self}' names several backbones, not one architecture")
        return self.name + (f"{GRID}{self.grid}" if self.grid is not None else "") + (LOGMEL if self.logmel else "")

    def without_weights(self) -> BackboneSpec:
        """A model without its `@weights` (a concatenation keeps its parts' own: they are part of what it is)."""
        return BackboneSpec("model", self.name, self.grid, self.logmel) if self.kind == "model" else self

    def networks(self) -> BackboneSpec:
        """Every part without its weights: the networks alone (`a@random+b` → `a+b`), as a backbone's name says."""
        if self.kind == "model":
            return self.without_weights()
        return BackboneSpec(self.kind, members=tuple(m.networks() for m in self.members), kinds=self.kinds)

    def inner(self) -> BackboneSpec:
        """A `+logmel` model's image backbone (with the weights, which go to it)."""
        return BackboneSpec("model", self.name, self.grid, False, self.weights)

    def encoders(self) -> dict[str, BackboneSpec]:
        """A table's column kind → its encoder."""
        return dict(zip(self.kinds, self.members, strict=True))

    @property
    def is_single(self) -> bool:
        """One network (a model, not a concatenation, ensemble, `auto` or a table's pairs)."""
        return self.kind == "model"


def parse_backbone(text: str | BackboneSpec) -> BackboneSpec:
    """`--backbone` text → its `BackboneSpec` (a spec is returned as it is)."""
    if isinstance(text, BackboneSpec):
        return text
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--backbone needs a backbone name (see `transferkit models`); got {text!r}")
    whole = text.strip()
    prefixed = _PREFIX_RE.match(whole)
    if prefixed and prefixed["prefix"].lower() in (AUTO, ENSEMBLE):
        prefix, rest = prefixed["prefix"].lower(), prefixed["rest"]
        members = _models(rest, whole, where=f"'{prefix}:'")
        if prefix == ENSEMBLE and len(members) < 2:
            raise ConfigError(f"--backbone '{whole}': an ensemble needs two or more members "
                              "(ensemble:NAME,NAME)")
        return BackboneSpec(prefix, members=members)  # type: ignore[arg-type]
    if whole.lower() == AUTO:
        return BackboneSpec("auto")
    if prefixed and not whole[prefixed.end("prefix"):].lstrip().startswith(":grid"):
        _no_close_prefix(prefixed["prefix"], whole)
    if any(_KIND_RE.match(part) for part in whole.split(",")):
        return _table(whole)
    return _model(whole, whole)


def parse_backbone_list(text: str) -> tuple[BackboneSpec, ...]:
    """'A,B@random' (a list of models, as `transferkit rank --backbones` takes) → their specs."""
    return _models(text, text.strip(), where="the list")


def _no_close_prefix(prefix: str, whole: str) -> None:
    close = difflib.get_close_matches(prefix.lower(), [AUTO, ENSEMBLE], n=1, cutoff=0.7)
    if close:
        raise ConfigError(f"--backbone '{whole}': unknown prefix '{prefix}:'. Did you mean '{close[0]}:'?")


def _models(text: str, whole: str, *, where: str) -> tuple[BackboneSpec, ...]:
    out: list[BackboneSpec] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:  # 'A,B,' and 'A,,B' list A and B, as they always have
            continue
        nested = _PREFIX_RE.match(part)
        if (nested and nested["prefix"].lower() in (AUTO, ENSEMBLE)) or part.lower() == AUTO:
            raise ConfigError(f"--backbone '{whole}': '{part}' cannot be nested in {where}; list backbone names")
        out.append(_model(part, whole))
    return tuple(out)


def _table(whole: str) -> BackboneSpec:
    kinds: list[str] = []
    members: list[BackboneSpec] = []
    for part in whole.split(","):
        pair = _KIND_RE.match(part)
        if pair is None:
            raise ConfigError(f"--backbone '{whole}': '{part.strip()}' is not KIND=NAME; a table takes pairs such "
                              "as 'text=all-minilm-l6-v2,image=efficientnet_lite0'")
        kind = pair["kind"].lower()
        if kind not in TABLE_KINDS:
            close = difflib.get_close_matches(kind, TABLE_KINDS, n=1, cutoff=0.6)
            hint = f" Did you mean '{close[0]}='?" if close else ""
            raise ConfigError(f"--backbone '{whole}': '{pair['kind']}=' is not a column kind (image, text or "
                              f"audio).{hint}")
        if kind in kinds:
            raise ConfigError(f"--backbone '{whole}': '{kind}=' is given twice")
        kinds.append(kind)
        members.append(_model(pair["rest"].strip(), whole))
    return BackboneSpec("table", members=tuple(members), kinds=tuple(kinds))


def _model(text: str, whole: str) -> BackboneSpec:
    """`part(+part)*`: one model, or a concatenation of two or more."""
    parts: list[BackboneSpec] = []
    for token in (t.strip() for t in text.strip().split("+")):
        logmel, sep, weights = token.partition("@")
        if logmel.strip().lower() == LOGMEL[1:] and parts and not parts[-1].logmel and parts[-1].weights is None:
            last = parts[-1]
            parts[-1] = BackboneSpec("model", last.name, last.grid, True, _weights(sep, weights, token, whole))
            continue
        parts.append(_part(token, text.strip(), whole))
    if len(parts) == 1:
        return parts[0]
    return BackboneSpec("concat", members=tuple(parts))


def _weights(sep: str, weights: str, token: str, whole: str) -> str | None:
    if sep and not weights.strip():
        raise ConfigError(f"--backbone '{whole}': '{token}' ends in '@' with no weights "
                          "(NAME@WEIGHTS: NAME@random, NAME@hub or NAME@path/to/weights.safetensors)")
    return weights.strip() or None


def _part(token: str, model: str, whole: str) -> BackboneSpec:
    """`NAME[:gridN][@WEIGHTS]` (a `+logmel` is joined to it by `_model`)."""
    name, sep, weights_text = token.partition("@")
    weights = _weights(sep, weights_text, token, whole)
    name = name.strip()
    if not name:
        raise ConfigError(f"--backbone '{whole}': an empty name in '{model}' (a '+' or '@' with nothing before it)")
    if name.lower() == LOGMEL[1:]:
        raise ConfigError(f"--backbone '{whole}': '+logmel' follows an image backbone (NAME+logmel), once")
    if "," in name:
        raise ConfigError(f"--backbone '{whole}': a list of backbones is 'ensemble:A,B' or 'auto:A,B'")
    close = difflib.get_close_matches(name.lower(), [LOGMEL[1:]], n=1, cutoff=0.75)
    if close and len(model) > len(token):
        raise ConfigError(f"--backbone '{whole}': '+{name}' is not a backbone. Did you mean '+logmel'?")
    grid = _GRID_RE.match(name)
    if grid is None:
        return BackboneSpec("model", name, weights=weights)
    cells = grid["cells"]
    if not cells.isdigit():
        raise ConfigError(f"--backbone '{whole}': ':grid{cells}' needs a number of cells a side, e.g. "
                          f"'{grid['name']}:grid2'")
    return BackboneSpec("model", grid["name"], int(cells), weights=weights)
