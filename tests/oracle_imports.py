"""Importing the test-only oracles: a missing one skips its test on a developer's machine and fails
it under ``CI=true`` (kept free of heavy imports so that tests/test_ci.py can run it in a subprocess
cheaply; tests import it from conftest)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

#: The test-only oracles declared in pyproject.toml's ``test`` extra: top-level module → distribution.
ORACLES = {
    "captum": "captum",
    "pytorch_grad_cam": "grad-cam",
    "torchray": "torchray",
    "sklearn": "scikit-learn",
    "nltk": "nltk",
    "scipy": "scipy",
    "quantus": "quantus",
    "selenium": "selenium",  # not an oracle: the driver of the site's browser test, declared the same way
}


def in_ci() -> bool:
    """``CI`` set to true (GitHub Actions, GitLab, most CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def oracle(module: str) -> ModuleType:
    """Import a declared test-only oracle (e.g. ``oracle("captum.attr")``), in place of
    ``pytest.importorskip``: where it is missing the test is skipped on a developer's machine, but
    fails under ``CI=true``, so that a CI run never goes green by silently skipping its oracles.
    Works inside a test and at module level (a module-level failure is a collection error). The
    process environment is left as it was (importing cv2 sets Qt's variables)."""
    top = module.partition(".")[0]
    if top not in ORACLES:
        raise ValueError(f"module: {module!r} is not a declared test oracle; expected a module of {sorted(ORACLES)}")
    environment = dict(os.environ)
    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = (f"test oracle {module!r} cannot be imported ({error}); it is declared in pyproject.toml's "
                   f"test extra as {ORACLES[top]!r}: pip install -e '.[test]' (make test does)")
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message, allow_module_level=True)
    finally:  # an oracle's first import may set variables (quantus → cv2 sets Qt's): whichever test
        os.environ.clear()  # imports it first, the process environment stays the one every test sees
        os.environ.update(environment)
