"""The error family (`transferkit.errors`) and how a user sees it: exit code 2, one line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_console_script_shows_errors_without_traceback(tmp_path) -> None:
    exe = Path(sys.executable).with_name("transferkit")
    if not exe.exists():
        pytest.skip("console script not installed")
    proc = subprocess.run([str(exe), "fit", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_check_is_fitted_names_the_class_and_what_to_call() -> None:
    from transferkit.errors import NotFittedError, TransferkitError, check_is_fitted

    class Probe:
        coef_ = None

    with pytest.raises(NotFittedError, match=r"This Probe is not fitted yet: call Probe\.fit\(\.\.\.\)"):
        check_is_fitted(Probe(), "coef_")
    fitted = Probe()
    fitted.coef_ = 0.0  # a falsy learned value is still fitted
    check_is_fitted(fitted, "coef_")
    assert issubclass(NotFittedError, TransferkitError) and issubclass(NotFittedError, AttributeError)


def test_the_family_is_caught_as_the_builtin_errors_callers_expect() -> None:
    """`except ValueError` catches a bad option or bad data; `except LookupError` an unknown backbone; the
    CLI catches them all as `TransferkitError`; an engine's fallback is a warning, never an error."""
    from transferkit import errors

    for cls, builtin in ((errors.ConfigError, ValueError), (errors.DataError, ValueError),
                         (errors.InputError, errors.DataError), (errors.BackboneError, LookupError)):
        assert issubclass(cls, builtin) and issubclass(cls, errors.TransferkitError), cls
    for cls in (errors.BundleError, errors.EngineError):
        assert issubclass(cls, errors.TransferkitError)
    assert issubclass(errors.EngineWarning, UserWarning) and not issubclass(errors.EngineWarning,
                                                                           errors.TransferkitError)
