"""The dialog's choices remembered per Resolve project (today: the keyframe marker colour).

Why a file of the user's and not the project: Blackmagic's scripting README (24 Jul 2026) documents no call that
keeps a script's own data in a project — ``Project.SetSetting(settingName, settingValue)`` sets "the project
setting" named in its "Looking up Project and Clip properties" list, and nothing else is promised. So the choices
are kept in a small JSON file keyed by ``Project.GetUniqueId()`` ("Returns a unique ID for the project item",
[README Project]): they follow the project on this machine, and a renamed project keeps them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

PREFS_ENV = "COOLCOLOR_RESOLVE_PREFS"  # the file; default ~/.config/coolcolor/resolve-projects.json


def prefs_path() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.environ.get(PREFS_ENV) or os.path.join(config, "coolcolor", "resolve-projects.json")


def _read_all() -> dict[str, Any]:
    try:
        with open(prefs_path(), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: the defaults (a broken file is replaced on the next save)
    return data if isinstance(data, dict) else {}


def load(project_id: str) -> dict[str, Any]:
    """The remembered choices of one project ({} when none)."""
    entry = _read_all().get(str(project_id))
    return dict(entry) if isinstance(entry, dict) else {}


def save(project_id: str, **values: Any) -> None:
    """Remember ``values`` for the project (merged into what it had), written atomically. Raises OSError."""
    data = _read_all()
    entry = data.get(str(project_id))
    data[str(project_id)] = {**(entry if isinstance(entry, dict) else {}), **values}
    path = prefs_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".resolve-projects.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
