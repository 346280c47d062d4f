"""The ``coolcolor`` command.

Each area of the backend contributes its own sub-commands through a ``register(subparsers)`` function
in its ``cli`` module, listed in ``COMMAND_MODULES``; a sub-command stores its handler in
``func`` and returns a process exit code.

Whatever goes wrong reaches the terminal as one line on stderr, never a traceback (``report_error``):

* bad arguments (argparse): ``coolcolor CMD: error: … (see coolcolor CMD --help)``, exit 2;
* errors meant for the user (``CoolColorError``, the protocol's ``ProtocolError``) and the system's
  own refusals (``OSError``: a full disk, a path that is a folder): ``coolcolor CMD: error: …``, exit 1;
* anything else is a bug and is said to be one: ``coolcolor CMD: internal error: TypeError: …`` with a
  hint to rerun with ``--debug`` (or ``COOLCOLOR_DEBUG=1``), which shows the traceback; exit 70.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from coolcolor import __version__
from coolcolor.cli_types import one_line
from coolcolor.errors import CoolColorError, describe_os_error

COMMAND_MODULES = (
    "coolcolor.model.cli",
    "coolcolor.world.cli",
    "coolcolor.video.cli",
    "coolcolor.daemon.cli",
    "coolcolor.train.cli",
    "coolcolor.real.cli",
    "coolcolor.plugins_install",
    "coolcolor.scaleout.farm",
)
DEBUG_ENV = "COOLCOLOR_DEBUG"
EXIT_ERROR = 1  # the user's input or the system refused: the message says what to change
EXIT_USAGE = 2  # bad arguments
EXIT_INTERNAL = 70  # a bug (EX_SOFTWARE): the message asks for the traceback
EXIT_INTERRUPTED = 130


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: the problem and where the usage is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser(modules: Sequence[str] = COMMAND_MODULES, prog: str = "coolcolor") -> argparse.ArgumentParser:
    parser = CliParser(
        prog=prog,
        description="Text-guided, temporally coherent colorization of black-and-white film.",
    )
    parser.add_argument("--version", action="version", version=f"coolcolor {__version__}")
    parser.add_argument("--debug", dest="debug_traceback", action="store_true",
                        help=f"show the Python traceback of an unexpected error (also: {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    _offer_debug_everywhere(parser)
    return parser


def _offer_debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after any sub-command too (``coolcolor colorize … --debug``), unless it has its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if "--debug" not in sub._option_string_actions:
                    # SUPPRESS: absent unless given, so it never resets a --debug given before the command
                    sub.add_argument("--debug", dest="debug_traceback", action="store_true", default=argparse.SUPPRESS,
                                     help="show the Python traceback of an unexpected error")
                _offer_debug_everywhere(sub)


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    """``coolcolor --debug …``, a sub-command's own ``--debug`` (serve) or ``COOLCOLOR_DEBUG=1``."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return bool(args is not None and (getattr(args, "debug_traceback", False) or getattr(args, "debug", False)))


def quiet_libraries() -> None:
    """No progress bars or advisory warnings from the model libraries: stderr carries our own lines.

    Set before transformers/diffusers/huggingface_hub are imported (they read these once); when a
    caller already imported them (tests, a notebook) their switches are turned as well.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in ("transformers", "diffusers"):
        if name in sys.modules:
            logging_module = importlib.import_module(f"{name}.utils.logging")
            logging_module.set_verbosity_error()
            logging_module.disable_progress_bar()


def command_name(args: argparse.Namespace) -> str:
    """``coolcolor world render``: the sub-command(s) that ran (``command``, then any ``*_command``)."""
    words = [getattr(args, "command", None)]
    words += [value for key, value in vars(args).items() if key.endswith("_command") and key != "command"]
    return " ".join(["coolcolor", *(str(w) for w in words if w)])


def report_error(exc: BaseException, where: str, debug: bool) -> int:
    """Print ``exc`` as one line on stderr and return the exit code for it (see the module docstring)."""
    from coolcolor_protocol import ProtocolError

    if isinstance(exc, CoolColorError):
        print(f"{where}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(exc, ProtocolError):
        print(f"{where}: error: {one_line(exc.message)} (code {exc.code})", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(exc, OSError):
        print(f"{where}: error: {one_line(describe_os_error(exc))}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"{where}: internal error: {type(exc).__name__}: {one_line(exc) or '(no message)'} — this is a bug; "
        f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback and report it",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def main(
    argv: Sequence[str] | None = None, modules: Sequence[str] = COMMAND_MODULES, prog: str = "coolcolor"
) -> int:
    """Run a command; ``modules``/``prog`` let ``python -m coolcolor.daemon`` offer just its own."""
    if not debug_requested():
        quiet_libraries()
    parser = build_parser(modules, prog)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    debug = debug_requested(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{command_name(args)}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every error ends as one line; --debug shows the traceback
        if debug:
            raise
        return report_error(exc, command_name(args), debug)


if __name__ == "__main__":
    sys.exit(main())
