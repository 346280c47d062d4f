"""CoolColor for DaVinci Resolve Studio: the "CoolColor Colorize" Workspace ▸ Scripts ▸ Edit entry.

Runs inside Resolve's own Python (3.9+): the standard library, pyzmq and ``coolcolor_protocol`` only.
Modules: ``host`` (every Resolve call: selection, clips, markers, bin, comp, plate), ``comp`` (the ``.comp``
text), ``jobs`` (job specs and the daemon, polled), ``dialog`` (UIManager). Every Resolve and UI call runs on
the script's own thread: there is no background thread at all; a ``ui.Timer`` polls the daemon.
"""

from __future__ import annotations

__version__ = "0.1.0"
