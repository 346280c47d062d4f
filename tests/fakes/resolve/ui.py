"""Fake Fusion UIManager / UIDispatcher / Timer, as Resolve scripts use them [RES A3, R4]:

``ui = fusion.UIManager; disp = bmd.UIDispatcher(ui); win = disp.AddWindow({"ID": ..., "WindowTitle": ...},
ui.VGroup([...]))``; ``win.GetItems()`` maps element IDs to elements; ``win.On.<ID>.Clicked = fn``;
``win.On.<WindowID>.Close = fn``; ``ui.Timer({"ID": "Poll", "Interval": 500})`` whose timeouts reach
``disp.On.Timeout`` ("Native timers deliver callbacks on the UI dispatcher thread", [RES A3]); ``disp.RunLoop()``
blocks until ``disp.ExitLoop()``. Elements: Label, Button, LineEdit, TextEdit, ComboBox, SpinBox, CheckBox, Slider,
HGroup, VGroup, VGap, HGap [RES A3: "Elements include Label, Button, LineEdit, TextEdit, ComboBox, SpinBox,
Slider, Tree and ColorPicker"]. Properties are attributes (``item.Text``, ``item.PlainText``, ``item.Value``,
``item.CurrentIndex``, ``item.CurrentText``, ``item.Checked``).

The fake ``RunLoop`` calls ``ui.driver(dispatcher)`` — the test's stand-in for the artist and the event loop,
which clicks (``dispatcher.click(id)``), types, and fires the timer (``dispatcher.tick()``), on this thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class _Handlers:
    def __init__(self) -> None:
        object.__setattr__(self, "_h", {})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        h = object.__getattribute__(self, "_h")
        if name not in h:
            h[name] = _EventSlot()
        return h[name]

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_h")[name] = value


class _EventSlot:
    """``win.On.<ID>`` — its ``Clicked`` / ``Close`` / ``CurrentIndexChanged`` attributes hold handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "handlers":
            raise AttributeError(name)
        return self.handlers.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "handlers":
            object.__setattr__(self, name, value)
        else:
            self.handlers[name] = value


class FakeElement:
    def __init__(self, kind: str, props: dict[str, Any] | None = None, children: list[Any] | None = None):
        object.__setattr__(self, "kind", kind)
        defaults: dict[str, Any] = {"Text": "", "PlainText": "", "Value": 0, "CurrentIndex": -1, "Checked": False,
                                    "Enabled": True, "ReadOnly": False, "Minimum": 0, "Maximum": 99}
        object.__setattr__(self, "props", {**defaults, **(props or {})})
        object.__setattr__(self, "items", [])
        object.__setattr__(self, "children", children or [])

    def __getattr__(self, name: str) -> Any:
        props = object.__getattribute__(self, "props")
        if name == "CurrentText":
            items, i = object.__getattribute__(self, "items"), props["CurrentIndex"]
            return items[i] if 0 <= i < len(items) else ""
        if name in props:
            return props[name]
        raise AttributeError(f"{object.__getattribute__(self, 'kind')} has no property {name}")

    def __setattr__(self, name: str, value: Any) -> None:
        props = object.__getattribute__(self, "props")
        if self.kind == "SpinBox" and name == "Value":
            value = max(props["Minimum"], min(props["Maximum"], int(value)))
        props[name] = value

    def AddItem(self, text: str) -> None:
        self.items.append(str(text))
        if self.props["CurrentIndex"] < 0:
            self.props["CurrentIndex"] = 0

    def AddItems(self, texts: list[str]) -> None:
        for t in texts:
            self.AddItem(t)

    def Clear(self) -> None:
        self.items.clear()
        self.props["CurrentIndex"] = -1
        if self.kind in ("TextEdit", "LineEdit"):
            self.props["Text"] = self.props["PlainText"] = ""

    def Count(self) -> int:
        return len(self.items)

    def walk(self) -> list[FakeElement]:
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


class FakeTimer:
    def __init__(self, props: dict[str, Any]):
        self.ID = props.get("ID", "Timer")
        self.Interval = props.get("Interval", 0)
        self.SingleShot = props.get("SingleShot", False)
        self.running = False

    def Start(self) -> None:
        self.running = True

    def Stop(self) -> None:
        self.running = False


class FakeUIManager:
    def __init__(self, app: Any):
        self._app = app
        self.timers: list[FakeTimer] = []
        self.driver: Callable[[FakeUIDispatcher], None] | None = None
        self.windows: list[FakeWindow] = []

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self._app._thread:
            self._app.thread_violations.append(f"UIManager.{what}")

    def _element(self, kind: str) -> Callable[..., FakeElement]:
        def make(props: Any = None, children: Any = None) -> FakeElement:
            self._check_thread(kind)
            if isinstance(props, list):
                props, children = {}, props
            return FakeElement(kind, props, children)

        return make

    def __getattr__(self, name: str) -> Any:
        if name in ("VGroup", "HGroup", "Label", "Button", "LineEdit", "TextEdit", "ComboBox", "SpinBox",
                    "CheckBox", "Slider", "VGap", "HGap", "Tree"):
            return self._element(name)
        raise AttributeError(name)

    def Timer(self, props: dict[str, Any]) -> FakeTimer:
        self._check_thread("Timer")
        timer = FakeTimer(props)
        self.timers.append(timer)
        return timer


class FakeWindow:
    def __init__(self, disp: FakeUIDispatcher, props: dict[str, Any], layout: FakeElement):
        self.props = props
        self.ID = props.get("ID", "Window")
        self.layout = layout
        self.On = _Handlers()
        self.shown = False
        self._items = {e.props["ID"]: e for e in layout.walk() if "ID" in e.props}

    def GetItems(self) -> dict[str, FakeElement]:
        return dict(self._items)

    def Find(self, id_: str) -> FakeElement | None:
        return self._items.get(id_)

    def Show(self) -> None:
        self.shown = True

    def Hide(self) -> None:
        self.shown = False


class FakeUIDispatcher:
    def __init__(self, ui: FakeUIManager):
        self.ui = ui
        self.On = _Handlers()
        self.window: FakeWindow | None = None
        self.running = False

    def AddWindow(self, props: dict[str, Any], layout: FakeElement) -> FakeWindow:
        self.ui._check_thread("AddWindow")
        self.window = FakeWindow(self, props, layout)
        self.ui.windows.append(self.window)
        return self.window

    def RunLoop(self) -> None:
        self.running = True
        if self.ui.driver is not None:
            self.ui.driver(self)
        self.running = False

    def ExitLoop(self) -> None:
        self.running = False

    # what the artist and the event loop do (test side) ----------------------------------------------------
    def item(self, id_: str) -> FakeElement:
        assert self.window is not None
        return self.window.GetItems()[id_]

    def click(self, id_: str) -> None:
        assert self.window is not None
        handler = getattr(self.window.On, id_).Clicked
        assert handler is not None, f"no Clicked handler for {id_}"
        handler({"who": id_, "what": "Clicked"})

    def choose(self, id_: str, text: str) -> None:
        """The artist picks ``text`` in a ComboBox: its CurrentIndex changes and the window's
        ``On.<ID>.CurrentIndexChanged`` handler runs (the UIManager event public Fusion scripts use, e.g.
        ``win.On.preset.CurrentIndexChanged = function(ev) … end`` [U])."""
        element = self.item(id_)
        element.CurrentIndex = element.items.index(text)
        assert self.window is not None
        handler = getattr(self.window.On, id_).CurrentIndexChanged
        if handler is not None:
            handler({"who": id_, "what": "CurrentIndexChanged"})

    def close(self) -> None:
        assert self.window is not None
        handler = getattr(self.window.On, self.window.ID).Close
        if handler is not None:
            handler({"who": self.window.ID, "what": "Close"})

    def tick(self) -> None:
        """One timeout of every running timer, delivered to ``disp.On.Timeout``."""
        for timer in self.ui.timers:
            if timer.running:
                handler = self.On.Timeout
                if isinstance(handler, _EventSlot):
                    handler = None
                if handler is not None:
                    handler({"who": timer.ID, "what": "Timeout"})
                if timer.SingleShot:
                    timer.running = False
