"""Small evaluators of the hosts' expression languages, written from their documented grammars, for the tests.

They check what the shared recombination tree (``coolcolor_protocol.recombine``) renders: a string that one of
these cannot parse, or that gives other numbers, would fail in the host too. Values may be Python floats or numpy
arrays (a whole frame at once); both branches of a conditional are evaluated element-wise, which the renderings
allow because every power's base is guarded.

Nuke — Expression / MergeExpression (Foundry, "Expression" node reference,
https://learn.foundry.com/nuke/content/reference_guide/color_nodes/expression.html, and the MergeExpression page
https://learn.foundry.com/nuke/content/reference_guide/merge_nodes/mergeexpression.html):
- C-like syntax: ``?:``, ``||``, ``&&``, ``==``/``!=``, ``<``/``>``/``<=``/``>=``, ``+``/``-``, ``*``/``/``/``%``,
  unary ``-``/``!``, function calls (``pow``, ``max``, ``min``, ``clamp``, ``abs``, ``sqrt``, ``exp``, ``log``,
  ``floor``, ``ceil``); a blank expression is 0.
- MergeExpression channels carry the input as a prefix: ``Br``, ``Ag``, ``Aab.a_star`` (``INPUTlayer.channel``).
- Temporaries ``temp_name0..3``/``temp_expr0..3``; outputs ``expr0..3`` written to ``channel0..3``.
- The expression knobs are EvalString knobs (TCL-evaluated), so ``[`` and ``$`` would be substituted: refused here.

Fusion — Custom Tool (DaVinci Resolve manual, ch. "Custom Tool", pp. 2208–2216):
- operators ``!x``, ``x ^ y`` (power), ``* / %``, ``+ -``, ``< > <= >=``, ``=``/``==``, ``<>``/``!=``,
  ``&``/``&&``, ``|``/``||``; comparisons return 1.0 or 0.0;
- pixels ``r1 g1 b1 a1`` (Image1) … ``r3 g3 b3 a3``; ``i1..i4`` the Intermediate results, ``s1..s4`` Setup;
- functions as in the Custom Tool code the research saw: ``min``, ``max``, ``abs``, ``sqrt``, ``floor``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

_NUMBER = r"\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?"


class ExpressionError(ValueError):
    pass


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def _where(c: Any, t: Any, f: Any) -> Any:
    if _is_array(c) or _is_array(t) or _is_array(f):
        with np.errstate(all="ignore"):
            return np.where(np.asarray(c) != 0, t, f)
    return t if c else f


def _bool(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64) if _is_array(x) else (1.0 if x else 0.0)


def _power(a: Any, b: Any) -> Any:
    if _is_array(a) or _is_array(b):
        with np.errstate(all="ignore"):
            return np.power(a, b)
    try:
        return math.pow(a, b)
    except ValueError:
        return float("nan")


def _maximum(a: Any, b: Any) -> Any:
    return np.maximum(a, b) if _is_array(a) or _is_array(b) else max(a, b)


def _minimum(a: Any, b: Any) -> Any:
    return np.minimum(a, b) if _is_array(a) or _is_array(b) else min(a, b)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "pow": _power,
    "max": _maximum,
    "min": _minimum,
    "clamp": lambda x, lo=0.0, hi=1.0: _minimum(_maximum(x, lo), hi),
    "abs": lambda x: np.abs(x) if _is_array(x) else abs(x),
    "sqrt": lambda x: np.sqrt(x) if _is_array(x) else math.sqrt(x),
    "floor": lambda x: np.floor(x) if _is_array(x) else math.floor(x),
}

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: np.fmod(a, b) if _is_array(a) or _is_array(b) else math.fmod(a, b),
    "^": _power,
    "<": lambda a, b: _bool(a < b),
    ">": lambda a, b: _bool(a > b),
    "<=": lambda a, b: _bool(a <= b),
    ">=": lambda a, b: _bool(a >= b),
    "==": lambda a, b: _bool(a == b),
    "=": lambda a, b: _bool(a == b),
    "!=": lambda a, b: _bool(a != b),
    "<>": lambda a, b: _bool(a != b),
    "&&": lambda a, b: _bool((np.asarray(a) != 0) & (np.asarray(b) != 0)) if _is_array(a) or _is_array(b)
    else _bool(a and b),
    "||": lambda a, b: _bool((np.asarray(a) != 0) | (np.asarray(b) != 0)) if _is_array(a) or _is_array(b)
    else _bool(a or b),
}
_BINARY["&"] = _BINARY["&&"]
_BINARY["|"] = _BINARY["||"]


class _Grammar:
    """Binary operators with their precedence (higher binds tighter), right-associative ones, and ``?:``."""

    def __init__(self, name: str, levels: list[tuple[str, ...]], right_assoc: tuple[str, ...], ternary: bool,
                 functions: tuple[str, ...]) -> None:
        self.name = name
        self.precedence = {op: i + 1 for i, ops in enumerate(levels) for op in ops}
        self.right_assoc = right_assoc
        self.ternary = ternary
        self.functions = functions
        ops = sorted(self.precedence, key=len, reverse=True) + ["(", ")", ",", "!"] + (["?", ":"] if ternary else [])
        self.token_re = re.compile(r"\s*(?:(?P<num>" + _NUMBER + r")|(?P<name>" + _NAME + r")|(?P<op>"
                                   + "|".join(re.escape(o) for o in ops) + r"))")


NUKE = _Grammar("Nuke", [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")],
                right_assoc=(), ternary=True,
                functions=("pow", "max", "min", "clamp", "abs", "sqrt", "floor"))
FUSION = _Grammar("Fusion", [("|", "||"), ("&", "&&"), ("=", "==", "<>", "!="), ("<", ">", "<=", ">="), ("+", "-"),
                             ("*", "/", "%"), ("^",)],
                  right_assoc=("^",), ternary=False, functions=("max", "min", "abs", "sqrt", "floor"))


def _tokens(text: str, grammar: _Grammar) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = grammar.token_re.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"{grammar.name}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup or "op"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, grammar: _Grammar, variables: Mapping[str, Any]) -> None:
        if grammar is NUKE and ("[" in text or "$" in text):
            raise ExpressionError("Nuke: '[' or '$' in an expression knob would be TCL-substituted")
        self.tokens = _tokens(text, grammar)
        self.i = 0
        self.grammar = grammar
        self.variables = variables

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionError(f"{self.grammar.name}: expected {value or 'more'}, got {tok}")
        self.i += 1
        return tok

    def parse(self) -> Any:
        if not self.tokens:
            return 0.0  # Nuke: a blank expression is 0
        value = self.expression()
        if self.peek() is not None:
            raise ExpressionError(f"{self.grammar.name}: trailing {self.peek()}")
        return value

    def expression(self) -> Any:
        cond = self.binary(1)
        tok = self.peek()
        if self.grammar.ternary and tok == ("op", "?"):
            self.take("?")
            if_true = self.expression()
            self.take(":")
            if_false = self.expression()
            return _where(cond, if_true, if_false)
        return cond

    def binary(self, level: int) -> Any:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op" or tok[1] not in self.grammar.precedence:
                return left
            prec = self.grammar.precedence[tok[1]]
            if prec < level:
                return left
            self.take()
            right = self.binary(prec if tok[1] in self.grammar.right_assoc else prec + 1)
            left = _BINARY[tok[1]](left, right)

    def unary(self) -> Any:
        tok = self.peek()
        if tok == ("op", "-"):
            self.take()
            return -self.unary()
        if tok == ("op", "+"):
            self.take()
            return self.unary()
        if tok == ("op", "!"):
            self.take()
            v = self.unary()
            return _bool(np.asarray(v) == 0) if _is_array(v) else _bool(v == 0)
        return self.primary()

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "num":
            return float(text)
        if kind == "name":
            if self.peek() == ("op", "("):
                if text not in self.grammar.functions:
                    raise ExpressionError(f"{self.grammar.name}: unknown function {text}()")
                self.take("(")
                args = [self.expression()]
                while self.peek() == ("op", ","):
                    self.take(",")
                    args.append(self.expression())
                self.take(")")
                return _FUNCTIONS[text](*args)
            if text not in self.variables:
                raise ExpressionError(f"{self.grammar.name}: unknown variable {text!r}")
            return self.variables[text]
        if text == "(":
            value = self.expression()
            self.take(")")
            return value
        raise ExpressionError(f"{self.grammar.name}: unexpected {text!r}")


def evaluate(text: str, grammar: _Grammar, variables: Mapping[str, Any]) -> Any:
    """One expression of ``grammar`` with the given variables."""
    return _Parser(text, grammar, variables).parse()


def eval_nuke_merge(knobs: Mapping[str, str], B: Mapping[str, Any], A: Mapping[str, Any]) -> dict[str, Any]:
    """A MergeExpression: ``B``/``A`` map channel names (``r``, ``ab.a_star``, …) of each input to values.

    Returns the written channels by name (``rgba.red`` …). Temporaries are evaluated in order, each seeing the
    inputs (and, as the undocumented chaining allows, earlier temporaries).
    """
    variables: dict[str, Any] = {}
    for prefix, channels in (("A", A), ("B", B)):
        for name, value in channels.items():
            variables[prefix + name] = value
    for i in range(4):
        name = knobs.get(f"temp_name{i}", "")
        if name:
            variables[name] = evaluate(knobs.get(f"temp_expr{i}", ""), NUKE, variables)
    out: dict[str, Any] = {}
    for i in range(4):
        channels = knobs.get(f"channel{i}", "none").split()
        for channel in channels:
            if channel not in ("none",) and not channel.startswith("-"):
                out[channel] = evaluate(knobs.get(f"expr{i}", ""), NUKE, variables)
    return out


def eval_fusion_custom(inputs: Mapping[str, str], c1: Mapping[str, Any], c2: Mapping[str, Any]) -> dict[str, Any]:
    """A Custom Tool: ``c1``/``c2`` give ``r g b a`` of Image1/Image2. Returns ``{"r","g","b","a"}``."""
    variables: dict[str, Any] = {}
    for n, channels in ((1, c1), (2, c2)):
        for ch in "rgba":
            variables[f"{ch}{n}"] = channels.get(ch, 0.0)
    for i in range(1, 5):
        variables[f"s{i}"] = evaluate(inputs.get(f"Setup{i}", ""), FUSION, {}) if inputs.get(f"Setup{i}") else 0.0
    for i in range(1, 5):
        text = inputs.get(f"Intermediate{i}", "")
        variables[f"i{i}"] = evaluate(text, FUSION, variables) if text else 0.0
    return {ch: evaluate(inputs[f"{name}Expression"], FUSION, variables)
            for ch, name in (("r", "Red"), ("g", "Green"), ("b", "Blue"), ("a", "Alpha"))}
