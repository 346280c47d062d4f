# CoolColor plug-in folder: Nuke runs this file when the folder is on its plug-in path (nuke.pluginAddPath, written
# into ~/.nuke/init.py by `coolcolor plugins install nuke`). No UI here: init.py also runs in render-only sessions.
# The installer puts coolcolor_protocol and pyzmq in lib/ beside this file; a manual install may do the same.
import os
import sys

_lib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")
if os.path.isdir(_lib) and _lib not in sys.path:
    sys.path.insert(0, _lib)
