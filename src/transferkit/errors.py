"""One family of errors. Every message says what was received, what was expected, and what to do."""

from __future__ import annotations


class TransferkitError(Exception):
    """Base of every error transferkit raises on purpose (the CLI shows these without a traceback)."""


class ConfigError(TransferkitError, ValueError):
    """A parameter, flag or config file value is invalid."""


class DataError(TransferkitError, ValueError):
    """The user's data cannot be used as given (empty folder, one class, missing column…)."""


class InputError(DataError):
    """One input (an image file, a text row, an audio clip) cannot be read. Skippable."""


class BackboneError(TransferkitError, LookupError):
    """A backbone is unknown, or its weights are not available."""


class BundleError(TransferkitError):
    """A saved model folder is missing, damaged, or of another format."""


class EngineError(TransferkitError):
    """An inference engine (onnxruntime, OpenVINO) cannot run a backbone: export or compile failed."""


class EngineWarning(UserWarning):
    """Extraction ran on another engine or precision than asked for (the message names the fallback)."""


class NotFittedError(TransferkitError, AttributeError):
    """An estimator was used before `fit`."""


def check_is_fitted(obj: object, attribute: str) -> None:
    """Raise `NotFittedError` naming the class unless `attribute` (ending in `_`) is set."""
    if getattr(obj, attribute, None) is None:
        name = type(obj).__name__
        raise NotFittedError(f"This {name} is not fitted yet: call {name}.fit(...) before using it.")
