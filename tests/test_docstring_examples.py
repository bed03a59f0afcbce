"""The ``>>>`` examples in the package's docstrings run and print what they show."""
import doctest
import importlib
from pathlib import Path

import pytest

import fastnet

_ROOT = Path(fastnet.__file__).parent
MODULES = sorted(".".join(("fastnet",) + p.relative_to(_ROOT).with_suffix("").parts)
                 .removesuffix(".__init__") for p in _ROOT.rglob("*.py")
                 if p.name != "__main__.py")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
