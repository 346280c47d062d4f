"""The menu entry: ``colorize(globals())`` from the launcher ``coolcolor plugins install resolve`` writes into
``Fusion/Scripts/Edit/CoolColor Colorize.py`` (or from the checkout's ``CoolColor Colorize.py``).

Resolve injects ``resolve`` / ``fusion`` / ``fu`` / ``bmd`` / ``app`` into the script's globals only, so the
launcher hands them over; ``resolve`` is found as in public in-Resolve scripts: ``app.GetResolve()``,
``fu.GetResolve()``, ``bmd.scriptapp("Resolve")`` ([docs/hosts.md A2, R4]).
"""

from __future__ import annotations

import sys
from typing import Any


def script_objects(g: dict[str, Any]) -> tuple[Any, Any, Any]:
    resolve = g.get("resolve")
    fusion = g.get("fusion") or g.get("fu")
    bmd = g.get("bmd")
    if resolve is None and g.get("app") is not None:
        resolve = g["app"].GetResolve()
    if resolve is None and fusion is not None:
        resolve = fusion.GetResolve()
    if resolve is None and bmd is not None:
        resolve = bmd.scriptapp("Resolve")
    if fusion is None and resolve is not None:
        fusion = resolve.Fusion()
    return resolve, fusion, bmd


def colorize(g: dict[str, Any]) -> Any | None:
    """Open the CoolColor dialog on the Edit page's selection; returns its controller (None if refused)."""
    resolve, fusion, bmd = script_objects(g)
    if resolve is None or fusion is None or bmd is None:
        out = sys.stdout
        if out is not None:
            out.write("CoolColor Colorize: run it from DaVinci Resolve Studio (Workspace > Scripts > Edit)\n")
        return None
    from coolcolor_resolve import dialog

    return dialog.run(resolve, fusion, bmd)
