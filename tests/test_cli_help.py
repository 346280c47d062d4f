"""Every ``coolcolor`` command's ``--help``: each option and positional has a line of help, in plain text.

Issue 27: ``colorize --help`` and ``plugins --help`` showed raw reStructuredText (double back-quotes,
``::``), and a dozen options had no help at all. The test walks every sub-parser the CLI builds.
"""

from __future__ import annotations

import argparse
import re

import pytest

from coolcolor import cli

RST = re.compile(r"``|::|^\s*\.\. |:(?:func|class|meth|mod):`")


def _parsers(parser: argparse.ArgumentParser, name: str = "coolcolor"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


PARSERS = list(_parsers(cli.build_parser()))


def test_the_walk_reaches_every_command():
    names = {name for name, _ in PARSERS}
    assert {"coolcolor colorize", "coolcolor serve", "coolcolor jobs", "coolcolor plugins install",
            "coolcolor farm export-openjd", "coolcolor train-eval", "coolcolor demo", "coolcolor words"} <= names


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=[name for name, _ in PARSERS])
def test_every_option_has_help_in_plain_text(name, parser, capsys):
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and (action.help is None or not action.help.strip())
    ]
    assert not missing, f"{name}: no help for {', '.join(missing)}"
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    markup = [line for line in text.splitlines() if RST.search(line)]
    assert not markup, f"{name} --help shows markup:\n" + "\n".join(markup)
