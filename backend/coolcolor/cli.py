"""The ``coolcolor`` command.

Each area of the backend contributes its own sub-commands through a ``register(subparsers)`` function
in its ``cli`` module, listed in ``COMMAND_MODULES``; a sub-command stores its handler in
``func`` and returns a process exit code. Errors meant for the user are raised as ``CoolColorError``
and printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from coolcolor import __version__
from coolcolor.errors import CoolColorError

COMMAND_MODULES = (
    "coolcolor.model.cli",
    "coolcolor.world.cli",
    "coolcolor.video.cli",
    "coolcolor.daemon.cli",
    "coolcolor.train.cli",
    "coolcolor.plugins_install",
)


def build_parser(modules: Sequence[str] = COMMAND_MODULES, prog: str = "coolcolor") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Text-guided, temporally coherent colorization of black-and-white film.",
    )
    parser.add_argument("--version", action="version", version=f"coolcolor {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(
    argv: Sequence[str] | None = None, modules: Sequence[str] = COMMAND_MODULES, prog: str = "coolcolor"
) -> int:
    """Run a command; ``modules``/``prog`` let ``python -m coolcolor.daemon`` offer just its own."""
    parser = build_parser(modules, prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CoolColorError as exc:
        print(f"coolcolor {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"coolcolor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
