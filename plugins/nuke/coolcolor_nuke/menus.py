"""Registration in Nuke's UI (called from the plug-in folder's ``menu.py``, which Nuke runs in interactive sessions
only): Nodes toolbar ▸ CoolColor ▸ CoolColor, and a CoolColor menu in the menu bar with the daemon status."""

from __future__ import annotations

import os

import nuke

ICON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "icons", "coolcolor.png")


def register() -> None:
    """Idempotent: Menu.addCommand replaces an item of the same name."""
    from coolcolor_nuke import node

    toolbar = nuke.menu("Nodes").addMenu("CoolColor", icon=ICON)
    toolbar.addCommand("CoolColor", node.create_node, icon=ICON)
    bar = nuke.menu("Nuke").addMenu("CoolColor")
    bar.addCommand("Daemon status", node.on_check_daemon)
