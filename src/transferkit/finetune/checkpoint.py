"""Checkpoints written atomically and read without unpickling code, and the run folder they live in.

A run folder (`fit --out RUN`) holds `run.json` (what is trained on what: backbone reference,
data fingerprint, config), `checkpoints/{last,best}.ckpt`, `logs/`, and, once training ends, the
bundle files. `run.json` carries a format marker and version (`"format": "transferkit.run"`) and
the list of files a run writes (`transferkit.bundle.RUN_FILES`): a folder is a run because
transferkit marked it so, never because some file is called `run.json`. `--resume RUN` checks all
of that before continuing: it refuses a folder that is not a run, and a run made with another
backbone or other data. `start_run` prepares `--out` for a new run: with `--overwrite` it
deletes only the files an earlier run wrote, and refuses a folder holding anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypeAlias, TypedDict

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from transferkit.bundle import RUN_FILE, RUN_FILES, RUN_FORMAT, RUN_FORMAT_VERSION, is_bundle, is_run
from transferkit.errors import BundleError, ConfigError
from transferkit.jsontypes import JSONObject

if TYPE_CHECKING:
    from transferkit.finetune.config import FinetuneConfigRecord

#: the marker runs written before `format` existed carry (`"kind"`); still written for them
RUN_KIND = RUN_FORMAT

#: a Lightning checkpoint (or a callback's part of one): tensors and plain values by key, as `torch.save` wrote
#: them and Lightning's hooks hand them over
Checkpoint: TypeAlias = dict[str, Any]


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to a temporary file in the same folder, then `os.replace`: never a torn file.

    Loading uses `weights_only=True`: a checkpoint holds tensors and plain values only.
    """

    def save_checkpoint(self, checkpoint: Checkpoint, path: str | os.PathLike[str], storage_options: object = None,
                        ) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load_checkpoint(self, path: str | os.PathLike[str], map_location: Any = None,
                        weights_only: bool | None = None) -> Checkpoint:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def data_fingerprint(items: Sequence[object], labels: list[str]) -> str:
    """sha256 over the (input, label) pairs in order: the identity of a training set."""
    h = hashlib.sha256()
    for item, label in zip(items, labels, strict=True):
        h.update(f"{item}\x00{label}\x01".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class RunParams(TypedDict):
    """The estimator's parameters a run was started with (`FinetunedClassifier._params_record`)."""

    backbone: str
    weights: str | None
    head: str
    seed: int
    batch_size: int
    precision: str
    training: FinetuneConfigRecord


class RunTarget(TypedDict, total=False):
    """--adapt-to: the target inputs' identity and count, in `run.json` (a resume must give the same)."""

    target_fingerprint: str | None
    n_target: int


class RunRecord(TypedDict):
    """What a new fine-tuning run writes into `run.json` (the format marker, its version and the files a run
    owns are added by `write_run`): what is trained on what, so that `--resume` can check it is the same."""

    status: str  # "running", then "done" (`finish_run`)
    data_source: str | None
    data_fingerprint: str
    target_fingerprint: NotRequired[str | None]  # `RunTarget`'s keys
    n_target: NotRequired[int]
    n_train: int
    params: RunParams
    backbone: JSONObject  # `Backbone.describe()` and where its weights came from, as bundles record it
    options: JSONObject  # `FitOptions.to_record()`, the run's options as --config would give them


def write_run(folder: Path, info: RunRecord) -> None:
    """Write `run.json` atomically, with the run format marker, its version and the files a run owns."""
    _write_run_document(folder, {**info})


def finish_run(folder: Path) -> None:
    """Mark the run in `folder` done (its bundle is complete), keeping everything else its run.json says."""
    run = read_run(folder)
    _write_run_document(folder, {**{k: v for k, v in run.items() if k != "kind"}, "status": "done"})


def _write_run_document(folder: Path, info: JSONObject) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marked = {k: v for k, v in info.items() if k not in ("kind", "format", "format_version", "files")}
    data = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "kind": RUN_KIND,
            "files": list(RUN_FILES), **marked}
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".run.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.replace(tmp, folder / RUN_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def start_run(out: Path, *, overwrite: bool) -> None:
    """Make `out` ready for a new fine-tuning run, before any training.

    A new or empty folder is used as is. An earlier run (or bundle) transferkit wrote there needs
    `overwrite`; then the earlier run's checkpoints, logs and `run.json` are deleted, and an
    earlier bundle's files stay until the new bundle replaces them. Anything transferkit did not
    write makes it a `BundleError` naming it, and nothing is deleted (`bundle.check_writable`).
    """
    from transferkit.bundle import check_writable, remove_owned

    if not overwrite and is_run(out) and not is_bundle(out):
        raise BundleError(
            f"--out '{out}' holds an unfinished fine-tuning run; continue it with "
            f"--resume {out}, pass --overwrite to start over, or choose another folder"
        )
    check_writable(out, overwrite=overwrite)
    if overwrite:
        remove_owned(out, run_only=True)


def read_run(folder: Path) -> JSONObject:
    """The run manifest of `folder`, or a `ConfigError` saying why it is not a resumable run."""
    path = folder / RUN_FILE
    if not folder.is_dir():
        raise ConfigError(f"--resume '{folder}': no such folder; give the --out folder of a fine-tuning run")
    if not path.is_file():
        raise ConfigError(
            f"--resume '{folder}' is not a transferkit fine-tuning run (no {RUN_FILE}); "
            "give the --out folder of an earlier `fit --strategy finetune`"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--resume '{folder}': {RUN_FILE} is damaged ({exc})") from exc
    if not isinstance(info, dict) or RUN_FORMAT not in (info.get("format"), info.get("kind")):
        raise ConfigError(
            f"--resume '{folder}': {RUN_FILE} is not a transferkit run manifest (no "
            f"\"format\": \"{RUN_FORMAT}\" in it); give the --out folder of an earlier `fit --strategy finetune`"
        )
    version = info.get("format_version", 0)
    if not isinstance(version, int) or version > RUN_FORMAT_VERSION:
        raise ConfigError(
            f"--resume '{folder}': the run was written by a newer transferkit (run format {version!r}); "
            "upgrade transferkit to continue it"
        )
    return info


def last_checkpoint(folder: Path) -> Path:
    ckpt = folder / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(
            f"--resume '{folder}': the run has no checkpoint yet (checkpoints/last.ckpt); "
            "it was stopped before its first epoch ended: start it again without --resume"
        )
    return ckpt


def check_same_run(folder: Path, info: JSONObject, *, backbone: JSONObject, data: str) -> None:
    """Refuse to resume `info` with another backbone or other data."""
    saved = info.get("backbone", {})
    if (saved.get("name"), saved.get("weights_id")) != (backbone.get("name"), backbone.get("weights_id")):
        raise ConfigError(
            f"--resume '{folder}' was trained with backbone '{saved.get('name')}' (weights "
            f"{str(saved.get('weights_id'))[:16]}…), not '{backbone.get('name')}' "
            f"({str(backbone.get('weights_id'))[:16]}…); refusing to mix them"
        )
    if info.get("data_fingerprint") != data:
        raise ConfigError(
            f"--resume '{folder}' was trained on other data ({info.get('data_source')}, "
            f"{info.get('n_train')} training inputs); resume it with the same data and split, "
            "or start a new run"
        )


def prepare_run_folder(out: Path, *, overwrite: bool) -> None:
    """Make `out` ready for a new run (what `FinetunedClassifier.prepare_output` calls): `start_run`.

    An unfinished run needs `overwrite`; with it only the files an earlier run wrote are deleted,
    and a folder holding anything transferkit did not write is refused, naming it.
    """
    start_run(out, overwrite=overwrite)


def load_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint's tensors and plain values (`weights_only=True`), or a `ConfigError` naming the file.

    A truncated file or one holding code objects is refused with our message: PyTorch's own would
    suggest `weights_only=False`, which would execute whatever the file holds.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, globals refused by the weights-only unpickler
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"'{path}' is not a checkpoint transferkit can read safely ({first}); it is damaged or was not "
            "written by transferkit. Delete it and start the run again without --resume"
        ) from exc
    if not isinstance(state, dict):
        raise ConfigError(f"'{path}' is not a transferkit checkpoint (it holds a {type(state).__name__})")
    return state
