"""Importing the FIX engines in tests: in CI a missing engine fails, elsewhere it skips."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``; in CI (where .[dev] installs every extra) never skip.

    Args:
        module: The engine's module, ``"fixcore"`` or ``"quickfix"``.
        extra: The fixseq extra that installs it, for the skip reason.

    Returns:
        The imported module.
    """
    if os.environ.get("CI"):
        return importlib.import_module(module)
    found: ModuleType = pytest.importorskip(module, reason=f"install fixseq[{extra}] (.[dev])")
    return found
