"""A fake ``nuke`` module for the CoolColor plugin's tests: the documented behaviour of the parts the plugin uses.

Every behaviour cites the Foundry page (or other document) that states it; ``[inference]`` marks what no page
states and a real Nuke must confirm. Pixels are real: ``nuke.execute`` writes real files and a Read reads them
(OpenImageIO, in the fake only). Abbreviations used below:
- PYREF = Foundry Nuke Python reference, https://learn.foundry.com/nuke/developers/<version>/pythonreference/…
- DEVGUIDE = Foundry Nuke Python developer guide, https://learn.foundry.com/nuke/developers/<version>/pythondevguide/…
- SCAN = Nuke 17.0v3 node/knob dump, kirkjr2/nuke-python-reference: data/nodes/<Class>.json (knob names, defaults).

The test drives what a user and Nuke's event loop would do through ``nuke.fake`` (not part of Nuke's API):
``fake.run_main_loop(until)`` pumps the calls queued by ``executeInMainThread``; ``fake.press_cancel(task)`` is the
user pressing a ProgressTask's cancel; ``fake.reset()`` is File ▸ New; ``fake.messages`` collects nuke.message.
"""

from __future__ import annotations

import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from nuke import _image
from nuke._tcl import TclError, TclExit, substitute

GUI = True  # PYREF nuke.GUI: "True if Nuke is running with a GUI" (nuke module variables)
env: dict[str, Any] = {"gui": True, "NukeVersionMajor": 15, "NukeVersionMinor": 1, "NukeVersionString": "15.1v3"}

# Knob flags (PYREF 13.2 nuke module constants: INVISIBLE, STARTLINE, READ_ONLY, DISABLED, NO_ANIMATION).
DISABLED = 0x80
NO_ANIMATION = 0x100
INVISIBLE = 0x400
STARTLINE = 0x1000
READ_ONLY = 0x10000000
ENDLINE = 0x2000


class CancelledError(RuntimeError):
    pass


def _require_main_thread(what: str) -> None:
    """DEVGUIDE "Threading" (https://learn.foundry.com/nuke/developers/90/pythondevguide/threading.html): "When you
    want to communicate from a child thread back to the main thread (the NUKE session), you need to use"
    executeInMainThread / executeInMainThreadWithResult. Strict reading: DAG edits, knob writes and dialogs from
    another thread fail here, so a plugin that does them off the main thread is caught. [inference: real Nuke may
    crash or corrupt state instead of raising]"""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"{what} called from a worker thread; use nuke.executeInMainThread")


# ---------------------------------------------------------------------------------------------------------------
# Knobs (PYREF nuke.Knob and subclasses)
# ---------------------------------------------------------------------------------------------------------------
class Knob:
    """PYREF 13.2 nuke.Knob: name(), label(), setValue/value/getValue, flags, visibility, tooltip, expressions,
    animation (setAnimated/setValueAt/getValueAt)."""

    _default: Any = None

    def __init__(self, name: str, label: str | None = None, *args: Any) -> None:
        self._name = name
        self._label = label if label is not None else name
        self._value: Any = self._default
        self._flags = 0
        self._tooltip = ""
        self._node: Node | None = None
        self._expression: str | None = None
        self._keys: dict[float, Any] = {}

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def setLabel(self, label: str) -> None:
        self._label = label

    def tooltip(self) -> str:
        return self._tooltip

    def setTooltip(self, tip: str) -> None:
        self._tooltip = tip

    def node(self) -> Node | None:
        return self._node

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setVisible(self, visible: bool) -> None:
        (self.clearFlag if visible else self.setFlag)(INVISIBLE)

    def visible(self) -> bool:
        return not self.getFlag(INVISIBLE)

    def setEnabled(self, enabled: bool) -> None:
        (self.clearFlag if enabled else self.setFlag)(DISABLED)

    def enabled(self) -> bool:
        return not self.getFlag(DISABLED)

    def _coerce(self, value: Any) -> Any:
        return value

    def setValue(self, value: Any, *args: Any) -> bool:
        if self._node is not None:
            _require_main_thread(f"Knob.setValue({self._name})")
        self._value = self._coerce(value)
        self._keys.clear()
        if self._node is not None:
            self._node._knob_changed(self)
        return True

    def value(self, *args: Any) -> Any:
        return self.getValueAt(frame()) if self._keys else self._value

    def getValue(self, *args: Any) -> Any:
        return self.value()

    # Expressions: PYREF nuke.Knob.setExpression / hasExpression (the fake stores, evaluates none).
    def setExpression(self, expression: str, *args: Any) -> bool:
        self._expression = expression
        return True

    def hasExpression(self, *args: Any) -> bool:
        return self._expression is not None

    # Animation: PYREF nuke.Array_Knob setAnimated / setValueAt(value, time) / getValueAt(time) / isAnimated.
    def setAnimated(self, *args: Any) -> bool:
        if not self._keys:
            self._keys[float(frame())] = self._value
        return True

    def isAnimated(self, *args: Any) -> bool:
        return bool(self._keys)

    def clearAnimated(self, *args: Any) -> bool:
        self._keys.clear()
        return True

    def setValueAt(self, value: Any, time: float, *args: Any) -> bool:
        if self._node is not None:
            _require_main_thread(f"Knob.setValueAt({self._name})")
        self._keys[float(time)] = self._coerce(value)
        return True

    def getValueAt(self, time: float, *args: Any) -> Any:
        """At a key: the key's value; between keys linear here, outside the keys the end key is held (Nuke's
        default "constant" extrapolation, Foundry user guide "Animating Parameters"; interpolation shape
        [inference])."""
        if not self._keys:
            return self._value
        times = sorted(self._keys)
        t = float(time)
        if t <= times[0]:
            return self._keys[times[0]]
        if t >= times[-1]:
            return self._keys[times[-1]]
        for a, b in zip(times, times[1:], strict=False):
            if a <= t <= b:
                va, vb = self._keys[a], self._keys[b]
                return va + (vb - va) * (t - a) / (b - a)
        return self._value

    def toScript(self, *args: Any) -> str:
        """PYREF nuke.Knob.toScript(quote, context): "Return the value of the knob in script syntax" (unevaluated;
        animation as its keys)."""
        if self._keys:
            return "{curve " + " ".join(f"x{t:g} {v}" for t, v in sorted(self._keys.items())) + "}"
        return str(self._value)

    def isKeyAt(self, time: float, *args: Any) -> bool:
        return float(time) in self._keys


class Tab_Knob(Knob):
    """PYREF nuke.Tab_Knob: a tab in the node's panel."""


class Text_Knob(Knob):
    """PYREF nuke.Text_Knob(name, label, text): static text in the panel; value() is the text."""

    _default = ""

    def __init__(self, name: str, label: str | None = None, text: str = "") -> None:
        super().__init__(name, label)
        self._value = text


class Int_Knob(Knob):
    """PYREF nuke.Int_Knob: value() is an int."""

    _default = 0

    def _coerce(self, value: Any) -> Any:
        return int(value)


class Double_Knob(Knob):
    """PYREF nuke.Double_Knob (an Array_Knob of one float)."""

    _default = 0.0

    def _coerce(self, value: Any) -> Any:
        return float(value)


class Boolean_Knob(Knob):
    """PYREF nuke.Boolean_Knob: value() is True/False."""

    _default = False

    def _coerce(self, value: Any) -> Any:
        return bool(value)


class String_Knob(Knob):
    """PYREF 12.2 nuke.String_Knob: value()/getValue() "Get the evaluated value of this knob as a string",
    getText() "Get the non-evaluated value of this knob"; setText/setValue store the text unevaluated."""

    _default = ""

    def __init__(self, name: str, label: str | None = None, text: str = "") -> None:
        super().__init__(name, label)
        self._value = text

    def _coerce(self, value: Any) -> Any:
        return str(value)

    def getText(self, *args: Any) -> str:
        return self._value

    def setText(self, text: str, *args: Any) -> None:
        self.setValue(text)

    def value(self, *args: Any) -> str:
        return _evaluate_tcl(self._value, self._node)


class EvalString_Knob(String_Knob):
    """PYREF 13.1 nuke.EvalString_Knob: "evaluates it's value as a TCL expression"; evaluate() "Evaluate the
    string, performing substitutions"."""

    def evaluate(self, *args: Any) -> str:
        return self.value()


class Multiline_Eval_String_Knob(EvalString_Knob):
    """PYREF 7.0 nuke.Multiline_Eval_String_Knob: "evaluates it's string value as a TCL expression. It provides a
    multiline text area"."""


class File_Knob(EvalString_Knob):
    """PYREF 7.0 nuke.File_Knob (an EvalString_Knob): value() "Returns the string on this knob, will be normalized to
    technical notation if sequence (%4d)"; fromUserText(s) "parses frame range off the end"."""

    def value(self, *args: Any) -> str:
        text = super().value()
        return re.sub(r"#+", lambda m: f"%0{len(m.group(0))}d", text)

    def getEvaluatedValue(self, *args: Any) -> str:
        return self.value()

    def fromUserText(self, s: str) -> None:
        m = re.match(r"^(.*?)\s+(-?\d+)-(-?\d+)$", s)
        self.setValue(m.group(1) if m else s)
        if m and self._node is not None and "first" in self._node._knobs:
            for k in ("first", "origfirst"):
                if k in self._node._knobs:
                    self._node[k].setValue(int(m.group(2)))
            for k in ("last", "origlast"):
                if k in self._node._knobs:
                    self._node[k].setValue(int(m.group(3)))


class Enumeration_Knob(Knob):
    """PYREF 12.0 nuke.Enumeration_Knob(name, label, items): value() the current item's name, getValue() its index,
    values() the items, setValues(items); setValue takes an item name or an index. An unknown name raises
    ValueError ("Bad value for ..."; [inference] on the exact text)."""

    def __init__(self, name: str, label: str | None = None, items: Sequence[str] = ()) -> None:
        super().__init__(name, label)
        self._items = [str(i) for i in items]
        self._value = 0

    def values(self) -> list[str]:
        return list(self._items)

    def setValues(self, items: Sequence[str]) -> None:
        self._items = [str(i) for i in items]
        self._value = min(self._value, max(0, len(self._items) - 1))

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
        names = [i.split("\t")[0] for i in self._items]
        if value in names:
            return names.index(value)
        raise ValueError(f"Bad value for {self._name}: {value}")

    def value(self, *args: Any) -> str:
        return self._items[self._value].split("\t")[0] if self._items else ""

    def getValue(self, *args: Any) -> float:
        return float(self._value)


class ChannelMask_Knob(Knob):
    """PYREF nuke.ChannelMask_Knob; SCAN MergeExpression.json: channel0..3 hold channel lists as text."""

    _default = "none"


class Channel_Knob(ChannelMask_Knob):
    pass


class Script_Knob(Knob):
    _default = ""

    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label)
        self._value = command

    def command(self) -> str:
        return self._value

    def setCommand(self, command: str) -> None:
        self._value = command


class PyScript_Knob(Script_Knob):
    """PYREF 13.2 nuke.PyScript_Knob(name, label=None, command=None): "A button that executes a Python script";
    execute() "Execute the command", with nuke.thisNode()/thisKnob() set to the button's node and knob
    (DEVGUIDE "Callbacks": thisNode/thisKnob in knob scripts)."""

    def execute(self) -> None:
        _require_main_thread("PyScript_Knob.execute")
        with _this(self._node, self):
            exec(compile(self._value, f"<knob {self._name}>", "exec"), {"nuke": sys.modules[__name__]})


class PythonKnob(String_Knob):
    """PYREF 6.3 nuke.PythonKnob: a string knob holding Python (onCreate, onDestroy, knobChanged, DEVGUIDE
    "Callbacks": these hidden knobs are "intended to allow you to define the behavior of gizmos")."""

    def value(self, *args: Any) -> str:
        return self._value


class Obsolete_Knob(Knob):
    pass


# ---------------------------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------------------------
def _node_knobs(cls: str) -> list[Knob]:
    """Each class's knobs, as SCAN lists them (only the ones the plugin and the tests touch)."""
    ks: list[Knob] = [String_Knob("name"), Multiline_Eval_String_Knob("label"), Boolean_Knob("disable"),
                      PythonKnob("onCreate"), PythonKnob("onDestroy"), PythonKnob("knobChanged"),
                      PythonKnob("autolabel"), Int_Knob("tile_color"), Boolean_Knob("selected"),
                      Int_Knob("xpos"), Int_Knob("ypos")]
    if cls == "Read":  # SCAN Read.json; DEVGUIDE/PYREF Read usage: file, first, last, origfirst, origlast
        # auto_alpha: SCAN Read.json, label "Auto Alpha", default false, tooltip "If the Read will produce RGB but
        # no alpha channel, then assume the alpha should be 1 if it's requested."
        ks += [File_Knob("file"), Int_Knob("first"), Int_Knob("last"), Int_Knob("origfirst"), Int_Knob("origlast"),
               Boolean_Knob("auto_alpha"),
               Enumeration_Knob("frame_mode", "frame", ["expression", "start at", "offset"]), String_Knob("frame"),
               Enumeration_Knob("before", "before", ["hold", "loop", "bounce", "black"]),
               Enumeration_Knob("after", "after", ["hold", "loop", "bounce", "black"]),
               Enumeration_Knob("on_error", "missing frames", ["error", "black", "checkerboard", "nearest frame"]),
               Enumeration_Knob("colorspace", "colorspace", ["default", "linear", "sRGB", "rec709"]),
               Boolean_Knob("raw"), PyScript_Knob("reload", "Reload")]
    elif cls == "Write":  # SCAN Write.json
        ks += [File_Knob("file"), Enumeration_Knob("file_type", "file type", [" ", "exr", "png", "tiff"]),
               Enumeration_Knob("datatype", "datatype", ["16 bit half", "32 bit float"]),
               ChannelMask_Knob("channels"), Enumeration_Knob("colorspace", "colorspace",
                                                              ["default", "linear", "sRGB", "rec709"]),
               Boolean_Knob("raw"), Boolean_Knob("create_directories"), Boolean_Knob("use_limit"),
               Int_Knob("first"), Int_Knob("last")]
        ks[-7]._value = "rgb"  # channels default "rgb" (SCAN)
    elif cls in ("MergeExpression", "Expression"):  # SCAN Expression.json / MergeExpression.json
        for i in range(4):
            ks += [String_Knob(f"temp_name{i}"), EvalString_Knob(f"temp_expr{i}")]
        defaults = ["rgba.red -rgba.green -rgba.blue", "-rgba.red rgba.green -rgba.blue",
                    "-rgba.red -rgba.green rgba.blue", "none none none rgba.alpha"]
        for i in range(4):
            c = ChannelMask_Knob(f"channel{i}")
            c._value = defaults[i]
            ks += [c, EvalString_Knob(f"expr{i}")]
        m = Double_Knob("mix")
        m._value = 1.0
        ks.append(m)
    elif cls == "Switch":  # SCAN Switch.json: which
        ks.append(Double_Knob("which"))
    elif cls == "Copy":
        # Foundry Nuke Reference Guide, Channel Nodes > "Copy" (https://learn.foundry.com/nuke/content/
        # reference_guide/channel_nodes/copy.html), Inputs and Controls table: from0 default "rgba.alpha" ("A channel
        # to copy from input A"), to0 default "rgba.alpha" ("The channel that the above Copy channel replaces in
        # input B"). SCAN Copy.json: from1..3/to1..3 default "none"; channels ("Layer Copy") default "none".
        # So a Copy made with nuke.nodes.Copy() replaces B's alpha with A's unless from0/to0 are changed.
        for i in range(4):
            src, dst = Channel_Knob(f"from{i}"), Channel_Knob(f"to{i}")
            if i == 0:
                src._value = dst._value = "rgba.alpha"
            ks += [src, dst]
        ks.append(ChannelMask_Knob("channels"))
    elif cls == "Grade":  # SCAN Grade.json: white (gain)
        w = Double_Knob("white")
        w._value = 1.0
        ks.append(w)
    elif cls == "Input":  # Input: knob number = input index ([U] ComfyUI-for-Nuke .nk; SCAN Input.json); set by
        ks.append(Int_Knob("number"))  # _create in creation order (see _number_input)
    elif cls == "Root":  # PYREF 11.1 nuke.Root; SCAN Root.json
        ks += [Int_Knob("first_frame"), Int_Knob("last_frame"), Double_Knob("fps"),
               Enumeration_Knob("colorManagement", "color management", ["Nuke", "OCIO"]),
               Enumeration_Knob("OCIO_config", "OpenColorIO config", ["nuke-default", "custom"]),
               File_Knob("customOCIOConfigPath")]
    return ks


_ROOT_DEFAULTS = {"first_frame": 1, "last_frame": 100, "fps": 24.0}
_MAX_INPUTS = {"NoOp": 1, "Read": 0, "Input": 0, "Root": 0, "Write": 1, "Output": 1, "Dot": 1, "Grade": 1,
               "MergeExpression": 2, "Copy": 2, "Switch": 2, "Group": 0, "Expression": 1}


class FrameRange:
    """PYREF nuke.FrameRange: first(), last(), frames() (count), iteration over the frames."""

    def __init__(self, first: int, last: int, increment: int = 1) -> None:
        self._first, self._last, self._incr = int(first), int(last), int(increment)

    def first(self) -> int:
        return self._first

    def last(self) -> int:
        return self._last

    def frames(self) -> int:
        return self._last - self._first + 1

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._first, self._last + 1, self._incr))

    def __str__(self) -> str:
        return f"{self._first}-{self._last}"


class Node:
    """PYREF 13.2 nuke.Node: Class(), name(), knob()/[] /knobs(), addKnob/removeKnob, setInput/input/inputs,
    firstFrame/lastFrame/frameRange, channels(), sample(), fullName(), parent()."""

    def __init__(self, cls: str, group: Group | None) -> None:
        self._class = cls
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = []
        self._parent = group
        self._deleted = False
        for k in _node_knobs(cls):
            self._attach(k)
        if cls == "Root":
            for k, v in _ROOT_DEFAULTS.items():
                self._knobs[k]._value = v

    def _attach(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._knobs["name"].getText()

    def setName(self, name: str, uncollide: bool = True, *args: Any, **kwargs: Any) -> None:
        """PYREF nuke.Node.setName(name, uncollide=True, updateExpressions=False): with uncollide a name another node
        of the group already has gets a number appended (Nuke's CoolColor → CoolColor1 [inference on the
        numbering])."""
        siblings = {n.name() for n in (self._parent.nodes() if self._parent is not None else []) if n is not self}
        if uncollide and name in siblings:
            base = re.sub(r"\d+$", "", name)
            i = 1
            while f"{base}{i}" in siblings:
                i += 1
            name = f"{base}{i}"
        self._knobs["name"].setValue(name)

    def fullName(self) -> str:
        if self._parent is None or self._parent is _STATE.root:
            return self.name()
        return f"{self._parent.fullName()}.{self.name()}"

    def parent(self) -> Group | None:
        return self._parent

    def knob(self, name: Any, *args: Any) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def allKnobs(self) -> list[Knob]:
        return list(self._knobs.values())

    def __getitem__(self, name: str) -> Any:
        """PYREF: node['name'] is node.knob('name'); a missing knob raises NameError ("knob x does not exist")."""
        k = self._knobs.get(name)
        if k is None:
            raise NameError(f"knob {name} does not exist")
        return k

    def addKnob(self, knob: Knob) -> None:
        """PYREF nuke.Node.addKnob: "Add knob k to this node or panel"; knobs appear in the order added, a Tab_Knob
        starting a tab."""
        _require_main_thread("Node.addKnob")
        self._attach(knob)

    def removeKnob(self, knob: Knob) -> None:
        _require_main_thread("Node.removeKnob")
        self._knobs.pop(knob.name(), None)

    def _knob_changed(self, knob: Knob) -> None:
        pass

    def maxInputs(self) -> int:
        if self._class == "Group":
            return len([n for n in self.nodes() if n.Class() == "Input"])  # type: ignore[attr-defined]
        return _MAX_INPUTS.get(self._class, 1)

    def setInput(self, i: int, node: Node | None) -> bool:
        """PYREF nuke.Node.setInput(i, node): "Connect input i to node if canSetInput() returns true"."""
        _require_main_thread("Node.setInput")
        if i >= self.maxInputs() and self._class != "Group":
            return False
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def input(self, i: int) -> Node | None:
        """PYREF nuke.Node.input(i): "Returns: The i'th input", None when unconnected."""
        if i < len(self._inputs):
            n = self._inputs[i]
            return None if n is None or n._deleted else n
        return None

    def inputs(self) -> int:
        """PYREF nuke.Node.inputs(): "Gets the maximum number of connected inputs"."""
        n = 0
        for i, inp in enumerate(self._inputs):
            if inp is not None and not inp._deleted:
                n = i + 1
        return n

    def dependencies(self, *args: Any) -> list[Node]:
        return [n for n in self._inputs if n is not None and not n._deleted]

    # -- time -------------------------------------------------------------------------------------------------
    def frameRange(self) -> FrameRange:
        """PYREF nuke.Node.frameRange(): "Frame range for this node". A Read's is its first/last knobs, a node with
        no input the script's (Root first_frame/last_frame), others pass their input 0's. [inference: frame_mode
        offsets ignored]"""
        if self._class == "Read":
            return FrameRange(self["first"].value(), self["last"].value())
        if self._class == "Input":
            outer = self._parent.input(self["number"].value()) if self._parent is not None else None
            if outer is not None:
                return outer.frameRange()
        elif self._class == "Group":
            out = self.output()  # type: ignore[attr-defined]
            if out is not None:
                return out.frameRange()
        else:
            src = self.input(0)
            if src is not None:
                return src.frameRange()
        r = root()
        return FrameRange(r.firstFrame(), r.lastFrame())

    def firstFrame(self) -> int:
        return self.frameRange().first()

    def lastFrame(self) -> int:
        return self.frameRange().last()

    # -- pixels -----------------------------------------------------------------------------------------------
    def channels(self) -> list[str]:
        """PYREF nuke.Node.channels(): "List channels output by this node" (the fake renders the current frame)."""
        return sorted(_render(self, frame()).keys())

    def sample(self, channel: str, x: float, y: float, dx: float | None = None, dy: float | None = None,
               frame: float | None = None) -> float:
        """PYREF nuke.Node.sample (13.2 nuke.sample page: "Note that integers are at the corners of pixels, to
        center on a pixel add .5 … If the optional dx,dy are not given then the exact value of the square pixel
        that x,y lands in is returned"). Nuke's y axis starts at the bottom row (NDK "Image coordinates"
        [inference for Python])."""
        image = _render(self, _STATE.frame if frame is None else frame)
        plane = image.get(channel)
        if plane is None:
            return 0.0
        h = plane.shape[0]
        return float(plane[h - 1 - int(math.floor(y)), int(math.floor(x))])

    def error(self) -> bool:
        try:
            _render(self, _STATE.frame)
        except Exception:  # noqa: BLE001
            return True
        return False

    hasError = error

    def opHashes(self) -> list[int]:
        return [hash(_upstream_signature(self, _STATE.frame))]

    def help(self) -> str:
        return self._class

    def setXYpos(self, x: int, y: int) -> None:
        pass

    def xpos(self) -> int:
        return 0

    def ypos(self) -> int:
        return 0

    def setSelected(self, selected: bool) -> None:
        self._knobs["selected"]._value = bool(selected)

    def isSelected(self) -> bool:
        return bool(self._knobs["selected"]._value)

    def showControlPanel(self, *args: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{self._class} {self.fullName()}>"


class Group(Node):
    """PYREF 11.3 nuke.Group (https://learn.foundry.com/nuke/developers/113/pythonreference/nuke.Group-class.html):
    begin() "All python code that follows will be executed in the context of node" until end(); ``with group:``
    (__enter__/__exit__); nodes(), node(name), output(); a Group's inputs are its Input nodes, numbered by their
    ``number`` knob."""

    def __init__(self, cls: str, group: Group | None) -> None:
        super().__init__(cls, group)
        self._children: list[Node] = []

    def begin(self) -> Group:
        _STATE.context.append(self)
        return self

    def end(self) -> None:
        if len(_STATE.context) > 1 and _STATE.context[-1] is self:
            _STATE.context.pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()

    def nodes(self) -> list[Node]:
        return [n for n in self._children if not n._deleted]

    def node(self, name: str) -> Node | None:
        head, _, rest = name.partition(".")
        for n in self.nodes():
            if n.name() == head:
                if rest:
                    return n.node(rest) if isinstance(n, Group) else None
                return n
        return None

    def output(self) -> Node | None:
        for n in self.nodes():
            if n.Class() == "Output":
                return n
        return None

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self:
            return fn(*args)


class Root(Group):
    """PYREF 11.1 nuke.Root (https://learn.foundry.com/nuke/developers/111/pythonreference/nuke.Root-class.html):
    firstFrame()/lastFrame() and the knobs first_frame/last_frame; fps() "returns the FPS rounded to an int" while
    the knob ``fps`` holds the exact rate (e.g. 23.976)."""

    def firstFrame(self) -> int:
        return int(self["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self["last_frame"].value())

    def fps(self) -> int:
        return int(round(self["fps"].value()))

    def name(self) -> str:
        return "Root"

    def fullName(self) -> str:
        return "root"


class Layer:
    """PYREF 17.1 nuke.Layer: "Construct a layer with a name and optional list of channel names"; DEVGUIDE 16.0
    "Working with Channels and Layers": "If the layer doesn't yet exist, it is created"."""

    def __init__(self, name: str, channels: Sequence[str] | None = None) -> None:
        self._name = name
        existing = _STATE.layers.setdefault(name, [])
        for c in channels or ():
            if c not in existing:
                existing.append(c)
        self._channels = existing

    def name(self) -> str:
        return self._name

    def channels(self) -> list[str]:
        return list(self._channels)


def layers(node: Node | None = None) -> list[str]:
    """PYREF nuke.layers(node=None): "Lists the layers in a node" or all layers when no node is given."""
    if node is None:
        return sorted(set(_STATE.layers) | {"rgb", "rgba", "alpha"})
    return sorted({c.split(".")[0] for c in node.channels()})


# ---------------------------------------------------------------------------------------------------------------
# Script state, node creation and lookup
# ---------------------------------------------------------------------------------------------------------------
class _State:
    def __init__(self) -> None:
        self.root = Root("Root", None)
        self.context: list[Group] = [self.root]
        self.frame = 1
        self.layers: dict[str, list[str]] = {"rgba": ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]}
        self.counters: dict[str, int] = {}
        self.this: list[tuple[Node | None, Knob | None]] = []
        self.selected: Node | None = None


_STATE = _State()


class _this:
    def __init__(self, node: Node | None, knob: Knob | None) -> None:
        self.pair = (node, knob)

    def __enter__(self) -> None:
        _STATE.this.append(self.pair)

    def __exit__(self, *exc: Any) -> None:
        _STATE.this.pop()


def _number_input(node: Node, group: Group) -> None:
    """A Group's inputs are its Input nodes. Foundry Reference Guide "Input" (https://learn.foundry.com/nuke/content/
    reference_guide/other_nodes/input.html): "Adds an input arrow to a Group node. This allows you to add multiple
    inputs to your Group or gizmo (for example a main input and a mask input). By default, the inputs are numbered,
    but if you want to name them, you can do so by renaming the Input nodes. Note that you should always connect the
    main input first and any optional inputs after." Which number each gets is not on Foundry's page: the hidden
    ``number`` knob "is assigned chronologically. The first Input node that you create gets the hidden number 0. The
    second gets the hidden number 1" (keheka.com "The Hidden Number In Nuke"; the same in Nukepedia "Working with
    Pipe Numbers") [inference: third-party pages]; input 0 is the one a disabled Group passes through."""
    node._knobs["number"]._value = len([n for n in group.nodes() if n.Class() == "Input"])


def _create(cls: str, knobs: dict[str, Any], inputs: Sequence[Node | None] = ()) -> Node:
    _require_main_thread(f"creating a {cls} node")
    group = _STATE.context[-1]
    node: Node = Group(cls, group) if cls == "Group" else Node(cls, group)
    n = _STATE.counters.get(cls, 0) + 1
    _STATE.counters[cls] = n
    node._knobs["name"]._value = f"{cls}{n}"
    if cls == "Input":
        _number_input(node, group)
    group._children.append(node)
    for i, inp in enumerate(inputs):
        node.setInput(i, inp)
    for k, v in knobs.items():
        node[k].setValue(v)
    with _this(node, None):
        for fn, args, kwargs, cls_filter in list(_CALLBACKS["onCreate"]):
            if cls_filter in ("*", cls):
                fn(*args, **kwargs)
    return node


class _Nodes:
    """DEVGUIDE "Getting Started" (https://learn.foundry.com/nuke/developers/16.0/pythondevguide/basics.html):
    nuke.nodes.<Class>(knob=value, …, inputs=[…]) creates a node without connecting it to the selection; knob
    defaults (nuke.knobDefault) "do not run … for nodes created using the nuke.nodes.nodename() syntax"."""

    def __getattr__(self, cls: str) -> Callable[..., Node]:
        if cls.startswith("_"):
            raise AttributeError(cls)

        def make(**kw: Any) -> Node:
            inputs = kw.pop("inputs", ())
            return _create(cls, kw, inputs)

        return make


nodes = _Nodes()


def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:
    """PYREF nuke.createNode(node, args, inpanel): creates a node "as if the user had created it from the menu",
    connected to the selected node (user guide "Inserting nodes" [inference on the exact rule])."""
    n = _create(node, {})
    if args:
        for name, value in re.findall(r"(\w+)\s+(\S+)", args):
            n[name].setValue(value)
    sel = _STATE.selected
    if sel is not None and not sel._deleted and n.maxInputs() > 0:
        n.setInput(0, sel)
    _STATE.selected = n
    return n


def root() -> Root:
    """PYREF nuke.root(): "Get the DAG's root node"."""
    return _STATE.root


def thisNode() -> Node | None:
    """PYREF nuke.thisNode(): "Return the current context node" (the node whose knob script/callback runs;
    otherwise the current group, DEVGUIDE "Callbacks")."""
    for node, _ in reversed(_STATE.this):
        if node is not None:
            return node
    return _STATE.context[-1]


def thisKnob() -> Knob | None:
    return _STATE.this[-1][1] if _STATE.this else None


def thisGroup() -> Group:
    return _STATE.context[-1]


def toNode(s: str) -> Node | None:
    """PYREF nuke.toNode(s): "Search for a node in the DAG by name and return it"; names are relative to the
    current group, ``root.`` or ``Group1.Read1`` paths allowed; None if none."""
    if s.startswith("root."):
        return _STATE.root.node(s[5:])
    return _STATE.context[-1].node(s) or (_STATE.root.node(s) if _STATE.context[-1] is not _STATE.root else None)


def allNodes(filter: str | None = None, group: Group | None = None, recurseGroups: bool = False) -> list[Node]:
    """PYREF nuke.allNodes(filter, group, recurseGroups): nodes of the current (or given) group, optionally of one
    class, optionally recursing into groups."""
    g = group or _STATE.context[-1]
    out: list[Node] = []
    for n in g.nodes():
        if filter is None or n.Class() == filter:
            out.append(n)
        if recurseGroups and isinstance(n, Group):
            out += allNodes(filter, n, True)
    return out


def selectedNode() -> Node:
    if _STATE.selected is None or _STATE.selected._deleted:
        raise ValueError("no node selected")
    return _STATE.selected


def selectedNodes() -> list[Node]:
    return [] if _STATE.selected is None or _STATE.selected._deleted else [_STATE.selected]


def delete(node: Node) -> None:
    """PYREF nuke.delete(n): "The named node is deleted"; its onDestroy callbacks run first (DEVGUIDE Callbacks)."""
    _require_main_thread("nuke.delete")
    with _this(node, None):
        for fn, args, kwargs, cls_filter in list(_CALLBACKS["onDestroy"]):
            if cls_filter in ("*", node.Class()):
                fn(*args, **kwargs)
    for child in (node.nodes() if isinstance(node, Group) else []):
        child._deleted = True
    node._deleted = True


def frame(f: float | None = None) -> int:
    """PYREF nuke.frame(f=None): "Return or set the current frame number"."""
    if f is not None:
        _STATE.frame = int(f)
    return _STATE.frame


def value(knob_path: str, default: str | None = None) -> str:
    """PYREF 13.1 nuke.value(knob, default): evaluates "and expand[s] brackets and dollar signs in string knobs"."""
    node_name, _, knob_name = knob_path.rpartition(".")
    node = toNode(node_name) if node_name and node_name != "root" else _STATE.root
    if node is None or node.knob(knob_name) is None:
        if default is not None:
            return default
        raise NameError(f"{knob_path} not found")
    return str(node[knob_name].value())


def tcl(command: str, *args: Any) -> str:
    """PYREF nuke.tcl(s): "Run a tcl command"."""
    return _evaluate_tcl("[" + " ".join([command, *map(str, args)]) + "]", None)


def _evaluate_tcl(text: str, node: Node | None) -> str:
    def value_cmd(path: str) -> str:
        if "." not in path and node is not None:
            return str(node[path].value())
        return value(path)

    def exit_cmd(*a: str) -> str:
        fake.exited = True
        raise TclExit(0)

    commands: dict[str, Callable[..., Any]] = {"frame": lambda: _STATE.frame, "value": value_cmd, "exit": exit_cmd}
    return substitute(text, commands, {"frame": _STATE.frame})


# ---------------------------------------------------------------------------------------------------------------
# Rendering (the fake's own engine: enough for Read → … → Write and for sampling the node's result)
# ---------------------------------------------------------------------------------------------------------------
def _frame_file(pattern: str, f: int) -> str:
    return re.sub(r"%0?(\d*)d", lambda m: str(f).zfill(int(m.group(1) or 1)), pattern)


def _upstream_signature(node: Node, f: int) -> tuple[Any, ...]:
    """What decides a node's pixels: its class, its knobs' text and its inputs' signatures (the idea of Nuke's op
    hash, PYREF nuke.Node.opHashes [inference on what Nuke hashes])."""
    own = tuple(sorted((k, str(v._value), tuple(sorted(v._keys.items()))) for k, v in node._knobs.items()
                       if k not in ("name", "label", "xpos", "ypos", "selected", "tile_color")))
    ins = tuple(_upstream_signature(i, f) if i is not None else None for i in node._inputs)
    if node.Class() == "Input" and node._parent is not None:
        outer = node._parent.input(node["number"].value())
        ins = (_upstream_signature(outer, f),) if outer is not None else ()
    return (node.Class(), own, ins)


def _black_like(size: tuple[int, int]) -> dict[str, Any]:
    import numpy as np

    return {c: np.zeros(size, np.float32) for c in ("rgba.red", "rgba.green", "rgba.blue", "rgba.alpha")}


def _render(node: Node | None, f: float) -> dict[str, Any]:
    """One node's image at frame f. Per class:
    - Read (SCAN Read.json): frames outside first..last follow ``before``/``after`` (hold, …, black); a missing file
      follows ``on_error`` (label "missing frames": error, black, checkerboard, nearest frame); the file is read and
      converted by ``colorspace``/``raw`` (see _image).
    - Input/Output: a Group's Input n shows what the Group's input n is connected to; Output is the Group's result
      (PYREF nuke.Group; DEVGUIDE "Groups" [inference: exact wiring semantics]).
    - Read ``auto_alpha`` (SCAN Read.json tooltip): "If the Read will produce RGB but no alpha channel, then assume
      the alpha should be 1 if it's requested" — the fake adds an alpha of 1 to a file without one.
    - Switch (SCAN Switch.json help "Select one of the inputs based on an expression", ``which`` default 0; Foundry
      Nuke Stage reference "Switch": "Which … The input to display. Note: The input index will begin at 0."): the
      chosen input's whole image, every channel, passes; ``which`` is rounded and clamped to the connected inputs
      [inference]; animated, per frame.
    - Copy (Foundry Reference Guide "Copy": "Replaces channels in the B input with channels from the A input";
      input 0 = B, 1 = A as in the NDK Keymix example's input_label, [inference] for Copy): every channel of B
      passes unless named below.
      ``channels`` ("Layer Copy", SCAN Copy.json tooltip): "Copy all these channels from A to B, if they exist in
      A. If they are not in A, use B unchanged. Thus setting this to "all" will copy all the channels that exist
      in A." ``fromN`` → ``toN`` (tooltips "Copy this channel from A to the output channel at right" / "Put
      channel at left into this output channel"; defaults: see _node_knobs): the output channel ``toN`` is A's
      ``fromN``, black where A has no such channel [inference: Nuke reads a channel an image lacks as black, the
      behaviour AddChannels' help relies on: "If they are not in the input they are created and filled with
      black", NDK example AddChannels.cpp].
    - Grade (Foundry node reference "Grade"): ``white`` (gain) multiplies rgb.
    - MergeExpression: see _render_merge_expression. ``disable`` passes input 0 through (Node reference, common
      "disable" knob).
    """
    import numpy as np

    if node is None:
        raise RuntimeError("input not connected")
    f = int(f)
    cls = node.Class()
    if node["disable"].value() and cls not in ("Read",):
        return _render(node.input(0), f) if node.input(0) is not None else {}
    if cls == "Read":
        first, last = node["first"].value(), node["last"].value()
        if f < first or f > last:
            side = node["before"].value() if f < first else node["after"].value()
            if side == "black":
                probe = _render_read_file(node, first)
                return _black_like(next(iter(probe.values())).shape)
            f = min(max(f, first), last)
        try:
            image = _render_read_file(node, f)
        except FileNotFoundError:
            mode = node["on_error"].value()
            if mode == "error":
                raise RuntimeError(f"{node.name()}: Read error: No such file or directory: "
                                   f"{_frame_file(node['file'].value(), f)}") from None
            for probe_frame in range(first, last + 1):  # "black": the format of any frame that exists
                try:
                    return _black_like(next(iter(_render_read_file(node, probe_frame).values())).shape)
                except FileNotFoundError:
                    continue
            raise RuntimeError(f"{node.name()}: no frame of {node['file'].value()} exists") from None
        if node["auto_alpha"].value() and "rgba.alpha" not in image and "rgba.red" in image:
            image = dict(image, **{"rgba.alpha": np.ones_like(image["rgba.red"])})
        return image
    if cls == "Input":
        outer = node._parent.input(node["number"].value()) if node._parent is not None else None
        return _render(outer, f)
    if cls == "Group":
        return _render(node.output(), f)  # type: ignore[attr-defined]
    if cls in ("Output", "Dot", "Write"):
        return _render(node.input(0), f)
    if cls == "Grade":
        img = dict(_render(node.input(0), f))
        for c in ("rgba.red", "rgba.green", "rgba.blue"):
            if c in img:
                img[c] = (img[c] * node["white"].value()).astype(np.float32)
        return img
    if cls == "Switch":
        n_inputs = max(1, node.inputs())
        which = int(round(float(node["which"].getValueAt(f))))
        return _render(node.input(min(max(which, 0), n_inputs - 1)), f)
    if cls == "Copy":  # input 0 = B, 1 = A (SCAN Copy.json help: "Replace channels in the B input with … A")
        b_in = _render(node.input(0), f)
        b = dict(b_in)
        a = _render(node.input(1), f)
        for token in str(node["channels"].value()).split():
            if token in ("none", "") or token.startswith("-"):
                continue
            for c, v in a.items():  # only channels that exist in A; the others stay B's
                if token == "all" or c == token or c.split(".")[0] == token:
                    b[c] = v
        shape = next(iter(b_in.values()), next(iter(a.values()), np.zeros((1, 1)))).shape
        for i in range(4):
            src, dst = str(node[f"from{i}"].value()), str(node[f"to{i}"].value())
            if src not in ("none", "") and dst not in ("none", ""):
                b[dst] = a[src] if src in a else np.zeros(shape, np.float32)
        return b
    if cls == "MergeExpression":
        return _render_merge_expression(node, f)
    raise RuntimeError(f"the fake cannot render a {cls} node")


def _render_read_file(node: Node, f: int) -> dict[str, Any]:
    path = _frame_file(node["file"].value(), f)
    cache_key = (path, node["colorspace"].value(), node["raw"].value(), os.path.getmtime(path) if os.path.exists(path)
                 else None)
    hit = _READ_CACHE.get(cache_key)
    if hit is not None:
        return hit
    channels, _ = _image.read_file(path, str(node["colorspace"].value()), bool(node["raw"].value()))
    _READ_CACHE[cache_key] = channels
    return channels


_READ_CACHE: dict[Any, dict[str, Any]] = {}


def _render_merge_expression(node: Node, f: int) -> dict[str, Any]:
    """MergeExpression (Foundry node reference, https://learn.foundry.com/nuke/content/reference_guide/merge_nodes/
    mergeexpression.html): input 0 = B, 1 = A [inference on the order]; channels carry the input prefix (``Br``,
    ``Aab.a_star``, "To reference pixels in other layers, use INPUTlayer.channel"); ``channel0..3`` name the
    channels each ``expr0..3`` writes (SCAN MergeExpression.json defaults: channel0 "rgba.red -rgba.green
    -rgba.blue", channel1/2 green/blue, channel3 "none none none rgba.alpha" — so by default alpha is written,
    with a blank expression, which is 0: "a blank expression is 0", tests/hostexpr.py); ``mix`` (SCAN tooltip
    "Dissolve between the original image at 0 and the full effect at 1") blends the written channels with B.
    What happens to channels no ``channelN`` names is not documented: ``fake.merge_expression_unwritten`` says —
    "B" (default, [inference]: they come from B, as the Merge family's B pass-through) or "black" (they are
    zeroed), so a test can show a node does not depend on it. The expressions are evaluated by the tests' parser
    of Nuke's documented expression grammar (tests/hostexpr.py)."""
    import numpy as np
    from hostexpr import eval_nuke_merge  # tests/ is on sys.path in the tests that render through the node

    b = _render(node.input(0), f)
    a = _render(node.input(1), f)

    def short(ch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, v in ch.items():
            layer, chan = name.split(".", 1)
            if layer == "rgba":
                out[chan[0]] = v
            else:
                out[name] = v
        return out

    knobs = {k: (node[k].getText() if isinstance(node[k], String_Knob) else str(node[k].value()))
             for k in node.knobs() if re.match(r"(temp_name|temp_expr|expr|channel)\d$", k)}
    for k in knobs:  # the expression knobs are EvalString knobs: Nuke substitutes TCL first
        if k.startswith(("temp_expr", "expr")):
            knobs[k] = node[k].value()
    written = eval_nuke_merge(knobs, short(b), short(a))
    mix = float(node["mix"].value())
    out = dict(b) if fake.merge_expression_unwritten == "B" else {c: np.zeros_like(v) for c, v in b.items()}
    for c, v in written.items():
        v = np.broadcast_to(np.asarray(v, np.float32), next(iter(b.values())).shape)
        out[c] = (v * mix + b.get(c, 0) * (1 - mix)).astype(np.float32)
    return out


def execute(nameOrNode: Any, start: int | None = None, end: int | None = None, incr: int = 1,
            views: list[str] | None = None, continueOnError: bool = False) -> None:
    """DEVGUIDE 16.0 nuke.execute (https://learn.foundry.com/nuke/developers/16.0/pythondevguide/_autosummary/
    nuke.execute.html): execute(nameOrNode, start, end, incr, views, continueOnError=False) renders a Write for the
    frames; the range defaults to the root's; "If Nuke is run with the GUI up, this will pop up a progress meter. If
    the user hits the cancel button this command will return 'cancelled' error" (fake: ``fake.cancel_execute``).
    Write knobs (SCAN Write.json): file (%04d/####), file_type, datatype, channels (default rgb), colorspace, raw,
    create_directories. A missing folder without create_directories is an error ("Can't open …" [inference on the
    text]). Runs on the main thread [inference: synchronous GUI call]."""
    _require_main_thread("nuke.execute")
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise ValueError(f"{nameOrNode} cannot be executed")
    r = root()
    start = r.firstFrame() if start is None else int(start)
    end = r.lastFrame() if end is None else int(end)
    for f in range(start, end + 1, incr):
        if fake.cancel_execute:
            fake.cancel_execute = False
            raise RuntimeError("cancelled")
        fake.executed.append((node.fullName(), f))
        image = _render(node.input(0), f)
        path = _frame_file(node["file"].value(), f)
        folder = os.path.dirname(path)
        if folder and not os.path.isdir(folder):
            if not node["create_directories"].value():
                raise RuntimeError(f"{node.name()}: Can't open {path}: No such file or directory")
            os.makedirs(folder, exist_ok=True)
        file_type = node["file_type"].value().strip() or os.path.splitext(path)[1].lstrip(".")
        spec = str(node["channels"].value())
        names = {"rgb": ["rgba.red", "rgba.green", "rgba.blue"],
                 "rgba": ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"]}.get(spec) or sorted(image)
        try:
            _image.write_file(path, image, names, file_type, node["datatype"].value(), node["colorspace"].value(),
                              bool(node["raw"].value()))
        except RuntimeError as exc:
            if not continueOnError:
                raise RuntimeError(f"{node.name()}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Threads, progress, dialogs
# ---------------------------------------------------------------------------------------------------------------
def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: dict[str, Any] | None = None) -> None:
    """PYREF 8.0 nuke.executeInMain: "Execute the callable 'call' with optional arguments 'args' and named arguments
    'kwargs' in Nuke's main thread and return immediately"; a non-tuple args becomes (args,) (its source,
    https://learn.foundry.com/nuke/developers/140/pythondevguide/_modules/nuke_internal/executeInMain.html).
    DEVGUIDE "Threading": "Do not run the above functions from within the main thread or NUKE will hang" — the fake
    raises instead of hanging."""
    if threading.current_thread() is threading.main_thread():
        fake.main_thread_violations += 1
        raise RuntimeError("executeInMainThread called from the main thread: Nuke would hang")
    if not isinstance(args, tuple):
        args = (args,)
    fake._queue.put((call, args, dict(kwargs or {}), None))


def executeInMainThreadWithResult(call: Callable[..., Any], args: Any = (),
                                  kwargs: dict[str, Any] | None = None) -> Any:
    """Same page: "… in Nuke's main thread and wait for the result to become available"; an exception in the call
    is printed and the result is None (its source: ``traceback.print_exc(); r = None``)."""
    if threading.current_thread() is threading.main_thread():
        fake.main_thread_violations += 1
        raise RuntimeError("executeInMainThreadWithResult called from the main thread: Nuke would hang")
    if not isinstance(args, tuple):
        args = (args,)
    box: dict[str, Any] = {"event": threading.Event()}
    fake._queue.put((call, args, dict(kwargs or {}), box))
    box["event"].wait()
    return box.get("result")


class ProgressTask:
    """PYREF 13.1/17.1 nuke.ProgressTask(name): setProgress(i) "i is an integer representing the current progress"
    (0-100 by default: 17.1 "maximum – The maximum progress value (default 100)"), setMessage(s), isCancelled()
    "True if the user has requested the task to be cancelled"; the task disappears when the object is deleted
    [inference: Nuke closes it on destruction]. Creatable from any thread (DEVGUIDE Threading examples)."""

    kUserCanCancel = 1
    kShowTimeToGo = 2

    def __init__(self, name: str = "", *args: Any) -> None:
        self.name = name
        self.progress: list[int] = []
        self.messages: list[str] = []
        self._cancelled = False
        self.cancel_checks = 0
        fake.progress_tasks.append(self)

    def setProgress(self, i: int) -> None:
        if not isinstance(i, int):
            raise TypeError("setProgress takes an integer")
        self.progress.append(i)
        fake._notify()

    def setMessage(self, s: str) -> None:
        self.messages.append(str(s))
        fake._notify()

    def isCancelled(self) -> bool:
        self.cancel_checks += 1
        if fake.cancel_script is not None and fake.cancel_script(self):
            self._cancelled = True
        return self._cancelled


def message(prompt: str) -> None:
    """PYREF nuke.message(prompt): "Show an info dialog box" (modal; a GUI call, so main thread only)."""
    _require_main_thread("nuke.message")
    fake.messages.append(str(prompt))


def ask(prompt: str) -> bool:
    _require_main_thread("nuke.ask")
    fake.messages.append(str(prompt))
    return True


# ---------------------------------------------------------------------------------------------------------------
# Menus, plug-in paths, callbacks
# ---------------------------------------------------------------------------------------------------------------
class MenuItem:
    def __init__(self, name: str, command: Any = None, shortcut: str = "", icon: str = "") -> None:
        self._name, self._command, self._shortcut, self._icon = name, command, shortcut, icon

    def name(self) -> str:
        return self._name

    def icon(self) -> str:
        return self._icon

    def script(self) -> Any:
        return self._command

    def invoke(self) -> None:
        """Running the item: a callable is called, a string is executed as Python (DEVGUIDE "Custom UI":
        addCommand's command "can be a string of python code or a python callable")."""
        cmd = self._command
        if callable(cmd):
            cmd()
        elif cmd:
            exec(compile(cmd, f"<menu {self._name}>", "exec"), {"nuke": sys.modules[__name__]})


class Menu(MenuItem):
    """PYREF nuke.Menu: addMenu(name, icon=…) returns the (existing or new) sub-menu; addCommand(name, command,
    shortcut, icon, …) adds an item, a path with "/" creating sub-menus; an existing item of that name is replaced
    (DEVGUIDE "Custom UI" / custom_ui.md mirror, Damiengland/narla-nuke-assistant) [inference on the replacement];
    findItem(name)."""

    def __init__(self, name: str, icon: str = "") -> None:
        super().__init__(name, None, "", icon)
        self._items: list[MenuItem] = []

    def items(self) -> list[MenuItem]:
        return list(self._items)

    def findItem(self, name: str) -> MenuItem | None:
        head, _, rest = name.partition("/")
        for it in self._items:
            if it.name() == head:
                if rest:
                    return it.findItem(rest) if isinstance(it, Menu) else None
                return it
        return None

    def addMenu(self, name: str, icon: str = "", **kwargs: Any) -> Menu:
        found = self.findItem(name)
        if isinstance(found, Menu):
            if icon:
                found._icon = icon
            return found
        m = Menu(name, icon)
        self._items.append(m)
        return m

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "", **kwargs: Any) -> MenuItem:
        head, _, rest = name.rpartition("/")
        target = self.addMenu(head) if head else self
        item = MenuItem(rest, command, shortcut, icon)
        for i, it in enumerate(target._items):
            if it.name() == rest:
                target._items[i] = item
                return item
        target._items.append(item)
        return item

    def addSeparator(self, **kwargs: Any) -> None:
        pass


_MENUS: dict[str, Menu] = {}


def menu(name: str) -> Menu:
    """PYREF nuke.menu(name): "Find and return the Menu object" for 'Nuke' (menu bar), 'Nodes' (the Nodes toolbar),
    'Pane', 'Viewer', 'Node Graph', 'Properties', 'Animation'."""
    return _MENUS.setdefault(name, Menu(name))


def toolbar(name: str, create: bool = True) -> Menu:
    return menu(name)


_PLUGIN_PATH: list[str] = []


def pluginAddPath(args: str, addToSysPath: bool = True) -> None:
    """DEVGUIDE "Installing plug-ins" / PYREF nuke.pluginAddPath: "Adds all the paths to the beginning of the Nuke
    plugin path"; with addToSysPath (the default) also to sys.path (types-nuke overrides.pyi signature)."""
    for p in [args] if isinstance(args, str) else list(args):
        if p in _PLUGIN_PATH:
            _PLUGIN_PATH.remove(p)
        _PLUGIN_PATH.insert(0, p)
        if addToSysPath and p not in sys.path:
            sys.path.insert(0, p)


def pluginPath() -> list[str]:
    return list(_PLUGIN_PATH)


_CALLBACKS: dict[str, list[tuple[Callable[..., Any], tuple, dict, str]]] = {
    "onCreate": [], "onDestroy": [], "onScriptLoad": [], "onScriptClose": [], "knobChanged": []}


def _adder(kind: str) -> Callable[..., None]:
    def add(call: Callable[..., Any], args: tuple = (), kwargs: dict | None = None, nodeClass: str = "*") -> None:
        _CALLBACKS[kind].append((call, tuple(args), dict(kwargs or {}), nodeClass))

    return add


# DEVGUIDE "Callbacks": nuke.addOnCreate(call, args, kwargs, nodeClass), addOnDestroy, addOnScriptLoad,
# addOnScriptClose, addKnobChanged ("knobChanged … only while the panel is open" — the fake calls it on setValue).
addOnCreate = _adder("onCreate")
addOnDestroy = _adder("onDestroy")
addOnScriptLoad = _adder("onScriptLoad")
addOnScriptClose = _adder("onScriptClose")
addKnobChanged = _adder("knobChanged")


# ---------------------------------------------------------------------------------------------------------------
# The test's side: the main loop, the user, File ▸ New
# ---------------------------------------------------------------------------------------------------------------
class _Fake:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple, dict, dict | None]] = queue.Queue()
        self._changed = threading.Condition()
        self.messages: list[str] = []
        self.progress_tasks: list[ProgressTask] = []
        self.cancel_script: Callable[[ProgressTask], bool] | None = None
        self.cancel_execute = False
        self.exited = False
        self.executed: list[tuple[str, int]] = []
        self.main_thread_calls = 0
        self.main_thread_violations = 0
        self.errors: list[BaseException] = []
        self.merge_expression_unwritten = "B"  # see _render_merge_expression

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def pump(self) -> int:
        """Run every queued main-thread call now (on the calling thread, which must be the main thread). An
        exception in a call is kept in ``errors`` (Nuke prints it to the Script Editor) and re-raised by
        ``run_main_loop`` so a test sees it."""
        _require_main_thread("fake.pump")
        n = 0
        while True:
            try:
                call, args, kwargs, box = self._queue.get_nowait()
            except queue.Empty:
                return n
            n += 1
            self.main_thread_calls += 1
            try:
                result = call(*args, **kwargs)
                if box is not None:
                    box["result"] = result
            except BaseException as exc:  # noqa: BLE001 - recorded for the test
                self.errors.append(exc)
            finally:
                if box is not None:
                    box["event"].set()

    def run_main_loop(self, until: Callable[[], bool], timeout: float = 180.0) -> None:
        """Pump main-thread calls until ``until()`` is true; a generous timeout only guards a hung test."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            if self.errors:
                raise self.errors[0]
            if until():
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the condition did not become true in the main loop")
            try:
                call = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self._queue.put(call)  # back in line; pump() runs it in order

    def press_cancel(self, task: ProgressTask) -> None:
        task._cancelled = True

    def select(self, node: Node | None) -> None:
        """The user clicks a node in the Node Graph (it becomes the selection createNode connects to)."""
        _STATE.selected = node

    def render(self, node: Node, f: int) -> dict[str, Any]:
        """The node's whole image at frame f: channel name → H×W float32 array, row 0 = the TOP row."""
        return _render(node, f)

    def input_label(self, group: Group, i: int) -> str:
        """The label the Node Graph draws on the Group's input pipe ``i``: its Input node's name (Foundry Reference
        Guide "Input": "if you want to name them, you can do so by renaming the Input nodes"), less a leading
        "Input" ("Anything after 'Input' in the node name is what gets shown as the pipe label", keheka.com "The
        Hidden Number In Nuke"; "Input name = pipe name", Nukepedia "Working with Pipe Numbers") [inference:
        third-party pages for the prefix rule]. Not part of Nuke's Python API: Nuke only draws it."""
        for n in group.nodes():
            if n.Class() == "Input" and int(n["number"].value()) == i:
                name = n.name()
                return name[len("Input"):] if name.startswith("Input") else name
        raise IndexError(f"{group.name()} has no input {i}")

    def press(self, node: Node, knob: str) -> None:
        """The user clicks a PyScript_Knob button in the node's panel."""
        node[knob].execute()

    def run_knob_script(self, node: Node, knob: str) -> None:
        """Nuke running a node's callback knob (onCreate when a script is opened or the node pasted, onDestroy when
        it is deleted: DEVGUIDE "Callbacks"), with thisNode() = the node."""
        code = node[knob].getText()
        with _this(node, node[knob]):
            exec(compile(code, f"<{knob} of {node.name()}>", "exec"), {"nuke": sys.modules[__name__]})

    def reset(self) -> None:
        """File ▸ New: onScriptClose callbacks, every node gone, a fresh Root; menus, plug-in paths and registered
        callbacks (application state) stay."""
        global _STATE
        for fn, args, kwargs, _ in list(_CALLBACKS["onScriptClose"]):
            fn(*args, **kwargs)
        for n in allNodes(group=_STATE.root, recurseGroups=True):
            n._deleted = True
        _STATE = _State()
        _READ_CACHE.clear()
        self.messages.clear()
        self.progress_tasks.clear()
        self.cancel_script = None
        self.exited = False
        self.executed.clear()
        self.errors.clear()
        self.merge_expression_unwritten = "B"
        self.main_thread_calls = 0
        self.main_thread_violations = 0
        while not self._queue.empty():
            self._queue.get_nowait()


fake = _Fake()

__all__ = ["TclError", "TclExit", "fake"]
