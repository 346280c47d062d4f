"""CoolColor for Nuke: a CoolColor Group node that sends the plate to the local CoolColor daemon and recombines the
returned ab layer with the plate's own luminance.

Runs inside Nuke's Python (3.9+) with the standard library, pyzmq and ``coolcolor_protocol`` only.
"""

from __future__ import annotations

__version__ = "0.1.0"


def create_node() -> object:
    """Nodes toolbar ▸ CoolColor ▸ CoolColor (see ``coolcolor_nuke.node.create_node``)."""
    from coolcolor_nuke.node import create_node as _create

    return _create()
