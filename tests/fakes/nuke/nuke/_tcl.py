"""The part of Nuke's TCL substitution that string knobs perform on ``value()``.

Why: the prompt bug this fake must catch is a prompt like ``a [exit] red $env(HOME) tram`` being substituted by
an evaluating knob. Only the substitutions are modelled, with the commands a test needs:

- Tcl's two substitutions, command ``[cmd args]`` and variable ``$name`` / ``$name(index)``, and backslash
  escapes ``\\[ \\$ \\\\`` (Tcl reference, "Tcl.n — Summary of Tcl language syntax", rules [7] Command
  substitution, [8] Variable substitution, [9] Backslash substitution: https://www.tcl.tk/man/tcl8.6/TclCmd/Tcl.htm).
- Nuke's string knobs run that substitution when evaluated: ``EvalString_Knob`` "evaluates it's value as a TCL
  expression" and ``String_Knob.value()`` is "the evaluated value ... also see getText()" (Foundry Python reference
  12.2, nuke.String_Knob: https://learn.foundry.com/nuke/developers/12.2/pythonreference/nuke.String_Knob-class.html;
  13.1 nuke.EvalString_Knob: https://learn.foundry.com/nuke/developers/131/pythondevguide/_autosummary/nuke.EvalString_Knob.html).
- ``nuke.value()`` "will evaluate animation at the current frame, and expand brackets and dollar signs in string
  knobs" (https://learn.foundry.com/nuke/developers/131/pythondevguide/_autosummary/nuke.value.html).
- Commands: ``exit`` quits the application (Tcl ``exit``, https://www.tcl.tk/man/tcl8.6/TclCmd/exit.htm), ``frame``
  and ``value`` (Nuke TCL reference, nukepedia mirror http://nukepedia.com/reference/Tcl/group__tcl__builtin.html);
  any other command is Tcl's ``invalid command name "x"`` error; ``$env(NAME)`` is Tcl's ``env`` array
  (https://www.tcl.tk/man/tcl8.6/TclCmd/tclvars.htm), an unknown variable ``can't read "x": no such variable``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class TclError(RuntimeError):
    """What Nuke reports for a failed TCL substitution."""


class TclExit(SystemExit):
    """``[exit]`` was evaluated: a real Nuke would have quit."""


def substitute(text: str, commands: dict[str, Callable[..., Any]], variables: dict[str, Any]) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif c == "[":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"[": 1, "]": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise TclError("missing close-bracket")
            inner = substitute(text[i + 1:j - 1], commands, variables)
            words = inner.split()
            if not words:
                i = j
                continue
            fn = commands.get(words[0])
            if fn is None:
                raise TclError(f'invalid command name "{words[0]}"')
            out.append(str(fn(*words[1:])))
            i = j
        elif c == "$":
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] in "_:"):
                j += 1
            name = text[i + 1:j]
            if not name:
                out.append("$")
                i += 1
                continue
            if j < len(text) and text[j] == "(":
                k = text.index(")", j)
                index = substitute(text[j + 1:k], commands, variables)
                if name == "env":
                    if index not in os.environ:
                        raise TclError(f'can\'t read "env({index})": no such variable')
                    out.append(os.environ[index])
                else:
                    raise TclError(f'can\'t read "{name}({index})": no such variable')
                i = k + 1
                continue
            if name not in variables:
                raise TclError(f'can\'t read "{name}": no such variable')
            out.append(str(variables[name]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)
