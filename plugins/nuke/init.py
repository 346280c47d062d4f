# CoolColor plug-in folder: Nuke runs this file when the folder is on its plug-in path (nuke.pluginAddPath, put
# in ~/.nuke/init.py by `coolcolor plugins install nuke`). No UI here: init.py also runs in render-only sessions.
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_vendor = os.path.join(_here, "vendor")  # pyzmq / coolcolor_protocol copied here by the installer, if it did
for _path in (_vendor, _here):
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.insert(0, _path)
