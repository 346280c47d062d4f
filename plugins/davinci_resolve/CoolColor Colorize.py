"""CoolColor Colorize, run from a checkout (``coolcolor plugins install resolve`` writes its own launcher into
Fusion/Scripts/Edit that does the same): put the plugin folder on ``sys.path``, hand Resolve's globals over."""

import os
import sys
from typing import Any

try:
    _here = os.path.dirname(os.path.abspath(__file__))
except NameError:  # Resolve may exec the text without __file__
    _here = os.environ.get("COOLCOLOR_RESOLVE_LIB", "")
for _p in (_here, os.path.join(_here, "lib")):
    if _p and _p not in sys.path:
        sys.path.insert(0, _p)

from coolcolor_resolve.entry import colorize  # noqa: E402

COOLCOLOR_CONTROLLER: Any = colorize(globals())
