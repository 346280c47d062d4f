"""CoolColor Colorize — Workspace ▸ Scripts ▸ Edit ▸ CoolColor Colorize (DaVinci Resolve Studio).

Colorizes the selected timeline clips with the local CoolColor daemon. Resolve runs this file with the globals
``resolve`` / ``fusion`` / ``fu`` / ``bmd`` / ``app``; the plugin's modules live in the ``CoolColor`` folder
``coolcolor plugins install resolve`` puts beside the Scripts folder (or ``$COOLCOLOR_RESOLVE_LIB``).
"""

import os
import sys
from typing import Any, Iterator, Optional, Tuple


def _library_dirs() -> Iterator[str]:
    env = os.environ.get("COOLCOLOR_RESOLVE_LIB")
    if env:
        yield env
    try:
        here = os.path.dirname(os.path.abspath(__file__))
    except NameError:  # Resolve may exec the text without __file__
        return
    yield here  # running from a checkout: coolcolor_resolve/ sits beside this file
    yield os.path.join(os.path.dirname(os.path.dirname(here)), "CoolColor")  # Fusion/Scripts/Edit -> Fusion


for _d in _library_dirs():
    if os.path.isdir(os.path.join(_d, "coolcolor_resolve")) and _d not in sys.path:
        sys.path.insert(0, _d)
        break


def _globals() -> Tuple[Any, Any, Any]:
    g = globals()
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


def main() -> Optional[Any]:
    resolve, fusion, bmd = _globals()
    if resolve is None or fusion is None or bmd is None:
        print("CoolColor Colorize: run it from DaVinci Resolve Studio (Workspace > Scripts > Edit)")
        return None
    try:
        from coolcolor_resolve import dialog
    except ImportError as exc:
        print(f"CoolColor Colorize: the plugin is not installed completely ({exc}); "
              "run `coolcolor plugins install resolve`")
        return None
    return dialog.run(resolve, fusion, bmd)


if __name__ == "__main__":
    COOLCOLOR_CONTROLLER = main()
