"""Shared by the tests/test_nuke_*.py modules: put the fake ``nuke``, the plugin and tests/ on sys.path."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[2]
ROOT = TESTS.parent
FAKE_DIR = TESTS / "fakes" / "nuke"
PLUGIN_DIR = ROOT / "plugins" / "nuke"


def load_fake_nuke() -> ModuleType:
    for path in (str(TESTS), str(PLUGIN_DIR), str(FAKE_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)
    nuke = importlib.import_module("nuke")
    assert str(FAKE_DIR) in (nuke.__file__ or ""), f"a different nuke module was imported: {nuke.__file__}"
    nuke.fake.reset()
    return nuke
