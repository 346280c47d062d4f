"""The CoolColor node: a Group built by code, its knobs, its buttons, and what happens on the main thread.

Inside the Group (B = plate, A = ab):

    Source (Input 0) ─┬─────────────────────────────────────────────────── ColorizedOrPlate (0) ── Output
                      ├─ Recombine (B) ─ KeepPlate (A: rgb) ─ CopyAB (B) ─ ColorizedOrPlate (1) ┘
                      └───────────────── KeepPlate (B)        │
    ReadAB (raw) ─────── Recombine (A) ────────────────────── CopyAB (A: layer ab)
    Reference (Input 1, optional) ─ ReferenceWrite  (rendered at the reference frame when pressed; not in the output)

``Recombine`` is a MergeExpression whose knobs come from ``coolcolor_protocol.recombine.nuke_expressions`` (the one
expression tree, docs/architecture.md#the-color-contract); it writes rgb only. ``ColorizedOrPlate.which`` is keyed per frame: 1 where the daemon
delivered the frame, 0 elsewhere (there the output is the plate itself). The node changes the plate's rgb and
nothing else: ``KeepPlate`` (a Copy, B = the plate) takes only red, green and blue from Recombine, so alpha and
every other layer of the plate pass through Copy's B side ("Replaces channels in the B input with channels from
the A input", Foundry Reference Guide "Copy") — whatever a MergeExpression does with channels it does not write,
which no Foundry page states. ``CopyAB`` then adds the ``ab`` layer ("Layer Copy": "Copy all these channels from A
to B, if they exist in A. If they are not in A, use B unchanged", Copy's ``channels`` tooltip). Both Copies clear
their other from/to rows: row 0's documented default ``rgba.alpha`` → ``rgba.alpha`` would replace the plate's
alpha with A's (the ab EXR has none: black).

Every function here runs on Nuke's main thread (button scripts and executeInMainThread callbacks). Prompts are
read with ``getText()``: a Multiline_Eval_String_Knob's ``value()`` would TCL-evaluate ``[ ]`` and ``$``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from typing import Any, cast

import nuke

from coolcolor_nuke.frames import FrameListError, format_frames, parse_frames
from coolcolor_nuke.runner import START_DAEMON_HINT, Callbacks, JobRunner, PlannedJob
from coolcolor_protocol import ProtocolError
from coolcolor_protocol.abfiles import AB_CHANNELS, AB_FILE_PATTERN, AB_LAYER, BUILTIN_ENCODINGS, frame_file
from coolcolor_protocol.frames import KeyframeOutsideRange, check_keyframes_in_range
from coolcolor_protocol.identity import idempotency_key, settings_digest
from coolcolor_protocol.jobspec import JobSpec, file_sha256
from coolcolor_protocol.messages import TERMINAL_STATES
from coolcolor_protocol.recombine import nuke_expressions

NODE_TAG = "coolcolor_node"  # a hidden knob that marks our Groups
AUTO_ENCODING = "from input"
CACHE_ENV = "COOLCOLOR_NUKE_CACHE"
CONNECTION_ENV = "COOLCOLOR_CONNECTION_FILE"

_runners: dict[str, JobRunner] = {}  # node full name -> its running press

# The optional second input (issue 25 §4): a colour image whose colours the shot follows. A frame number plus an
# "exemplar" checkbox, not one enumeration: a compositor sets the frame the way FrameHold's "first frame" is set
# (typed, or "set to current frame" while viewing the graded frame), and the checkbox says only that this image is
# not a frame of the plate; the frame then just picks which frame of the reference input to take.
REFERENCE_INPUT = "Reference"  # its input number is read from the Input node's "number" knob (docs/hosts.md N8)
REFERENCE_FRAME_TIP = ("The plate frame the Reference input shows (e.g. the frame you graded): the node renders the "
                       "Reference input at this frame and that frame's colour becomes the shot's keyframe. It must "
                       "lie in the frame range sent. Unused while the Reference input is not connected.")
REFERENCE_EXEMPLAR_TIP = ("The Reference input is a colour still that is not a frame of the plate (a photograph of "
                          "the place or costume): every frame reads its colours, none copies them. It is rendered at "
                          "'reference frame', which need not lie in the plate's range.")


class NodeError(Exception):
    """A problem with the artist's input: one line on the status knob and in nuke.message."""


# ---------------------------------------------------------------------------------------------------------------
# Building the node
# ---------------------------------------------------------------------------------------------------------------
def _button(name: str, label: str, handler: str, startline: bool = False) -> nuke.PyScript_Knob:
    k = nuke.PyScript_Knob(name, label, f"import coolcolor_nuke.node as _cc\n_cc.{handler}(nuke.thisNode())")
    if startline:
        k.setFlag(nuke.STARTLINE)
    return k


def _tip(knob: nuke.Knob, text: str) -> nuke.Knob:
    knob.setTooltip(text)
    return knob


def _hidden(knob: nuke.Knob) -> nuke.Knob:
    knob.setFlag(nuke.INVISIBLE)
    return knob


def _read_only(knob: nuke.Knob) -> nuke.Knob:
    knob.setFlag(nuke.READ_ONLY)
    return knob


def encoding_items() -> list[str]:
    """The contract's built-in encodings, plus the OCIO config's colorspaces when the script uses one."""
    return [AUTO_ENCODING, *BUILTIN_ENCODINGS, *ocio_colorspaces()]


def ocio_config_path() -> str | None:
    """The script's OCIO config file, when its color management is OCIO with a custom config (Root knobs
    colorManagement / OCIO_config / customOCIOConfigPath), else $OCIO."""
    r = nuke.root()
    cm = r.knob("colorManagement")
    if cm is None or str(cm.value()) != "OCIO":
        return None
    custom = r.knob("customOCIOConfigPath")
    path = str(custom.value()) if custom is not None else ""
    path = path or os.environ.get("OCIO", "")
    return path if path and os.path.isfile(path) else None


def ocio_colorspaces() -> list[str]:
    path = ocio_config_path()
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    names: list[str] = []
    for block in re.split(r"^\s*- !<ColorSpace>", text, flags=re.M)[1:]:
        m = re.search(r"^\s*name:\s*(.+?)\s*$", block, flags=re.M)
        if m:
            names.append(m.group(1).strip("'\""))
    return names


def create_node() -> nuke.Node:
    """Nodes toolbar ▸ CoolColor ▸ CoolColor: a new CoolColor Group, connected to the selected node (an empty Group
    has no input yet when createNode would connect it, so the connection is made after building)."""
    selected = nuke.selectedNodes()
    group = cast(nuke.Group, nuke.createNode("Group", inpanel=False))
    build_node(group)
    if selected and selected[0] is not group:
        group.setInput(0, selected[0])
    return group


def build_node(group: nuke.Group) -> nuke.Group:
    """Fill an empty Group with the CoolColor knobs and the internal nodes."""
    nuke.Layer(AB_LAYER, list(AB_CHANNELS))
    group.setName("CoolColor")
    tab = nuke.Tab_Knob("coolcolor", "CoolColor")
    group.addKnob(tab)
    knobs: list[nuke.Knob] = [
        nuke.Multiline_Eval_String_Knob("prompt", "prompt"),
        nuke.Multiline_Eval_String_Knob("negative_prompt", "negative prompt"),
        nuke.Boolean_Knob("use_input_range", "frame range from input"),
        nuke.Int_Knob("first", "first"),
        nuke.Int_Knob("last", "last"),
        nuke.Int_Knob("handles", "handles"),
        nuke.String_Knob("keyframes", "keyframes"),
        _button("add_keyframe", "+ current frame", "add_current_frame"),
        _button("remove_keyframe", "\u2212 current frame", "remove_current_frame"),
        _tip(nuke.Int_Knob("reference_frame", "reference frame"), REFERENCE_FRAME_TIP),
        _button("set_reference_frame", "set to current frame", "set_reference_frame"),
        _tip(nuke.Boolean_Knob("reference_exemplar", "exemplar (not a frame of the plate)"), REFERENCE_EXEMPLAR_TIP),
        nuke.Int_Knob("seed", "seed"),
        nuke.Int_Knob("steps", "steps"),
        nuke.Double_Knob("guidance", "guidance"),
        nuke.Enumeration_Knob("encoding", "input encoding", encoding_items()),
        nuke.Int_Knob("window", "frames per model call"),
        nuke.File_Knob("output_dir", "output folder"),
        _button("colorize", "Colorize", "on_colorize", startline=True),
        _button("preview", "Preview keyframe", "on_preview"),
        _button("cancel", "Cancel", "on_cancel"),
        _button("check_daemon", "Check daemon", "on_check_daemon"),
        nuke.Text_Knob("status", "status", "idle"),
        nuke.Text_Knob("unknown_words", "unknown words", ""),
        nuke.Double_Knob("mix", "mix"),
        _read_only(nuke.String_Knob("model_hash", "model hash")),
        _read_only(nuke.String_Knob("frames_seed", "seed of frames")),
        _read_only(nuke.String_Knob("frames_keyframes", "keyframes of frames")),
        _hidden(nuke.String_Knob("job_id", "job id")),
        _hidden(nuke.String_Knob("job_kind", "job kind")),
        _hidden(nuke.String_Knob("job_state", "job state")),
        _hidden(nuke.String_Knob("delivered", "delivered frames")),
        _hidden(nuke.Boolean_Knob(NODE_TAG, NODE_TAG)),
    ]
    for k in knobs:
        group.addKnob(k)
    group["use_input_range"].setValue(True)
    group["steps"].setValue(20)
    group["guidance"].setValue(5.0)
    group["mix"].setValue(1.0)
    group["window"].setValue(8)
    group[NODE_TAG].setValue(True)
    if group.knob("onCreate") is not None:  # the hidden callback knob every node has (dev guide "Callbacks")
        group["onCreate"].setValue("import coolcolor_nuke.node as _cc\n_cc.on_create(nuke.thisNode())")
    with group:
        # Created in this order: Source is input 0 (the plate, what a disabled node passes), Reference input 1 (the
        # optional colour image); the Node Graph labels each pipe with its Input node's name (docs/hosts.md N8).
        source = nuke.nodes.Input(name="Source")
        nuke.nodes.Input(name=REFERENCE_INPUT)
        read_ab = nuke.nodes.Read(name="ReadAB")
        read_ab["raw"].setValue(True)  # the ab values are data, never colour-converted
        read_ab["on_error"].setValue("black")  # a frame not delivered yet is no error (the Switch shows the plate)
        merge = nuke.nodes.MergeExpression(name="Recombine")
        merge.setInput(0, source)
        merge.setInput(1, read_ab)
        set_recombination(merge, "linear")
        merge["mix"].setExpression("parent.mix")
        keep = _copy("KeepPlate", b=source, a=merge, pairs=[(c, c) for c in _RGB])
        copy = _copy("CopyAB", b=keep, a=read_ab, pairs=[])
        copy["channels"].setValue(AB_LAYER)
        switch = nuke.nodes.Switch(name="ColorizedOrPlate")
        switch.setInput(0, source)
        switch.setInput(1, copy)
        out = nuke.nodes.Output(name="Output")
        out.setInput(0, switch)
    _update_label(group)
    return group


_RGB = ("rgba.red", "rgba.green", "rgba.blue")


def _copy(name: str, b: nuke.Node, a: nuke.Node, pairs: list[tuple[str, str]]) -> nuke.Node:
    """A Copy (input 0 = B, 1 = A) that replaces exactly ``pairs`` (A's channel → B's channel) and nothing else:
    every from/to row is set, since row 0 defaults to rgba.alpha → rgba.alpha (Reference Guide "Copy")."""
    copy = nuke.nodes.Copy(name=name)
    copy.setInput(0, b)
    copy.setInput(1, a)
    for i in range(4):
        src, dst = pairs[i] if i < len(pairs) else ("none", "none")
        copy[f"from{i}"].setValue(src)
        copy[f"to{i}"].setValue(dst)
    return copy


def set_recombination(merge: nuke.Node, encoding: str) -> None:
    """The shared tree's MergeExpression knobs (never written by hand here)."""
    for name, value in nuke_expressions(encoding, plate="B", ab="A").knobs().items():
        merge[name].setValue(value)


def _inner(group: nuke.Node, name: str) -> nuke.Node:
    node = cast(nuke.Group, group).node(name)
    if node is None:
        raise NodeError(f"the CoolColor node's internal {name} is missing: create the node again")
    return node


def text_of(node: nuke.Node, name: str) -> str:
    """A string knob's text as typed: ``getText()`` is "the non-evaluated value" (String_Knob), so ``[ ]`` and ``$``
    reach the daemon verbatim; ``value()`` would TCL-evaluate them."""
    return str(cast(nuke.String_Knob, node[name]).getText())


def _update_label(group: nuke.Node) -> None:
    text = text_of(group, "keyframes").strip()
    group["label"].setValue(f"keyframes {text}" if text else "")


def _set_status(group: nuke.Node, text: str) -> None:
    group["status"].setValue(text)


def _fail(group: nuke.Node, text: str) -> None:
    """Bad input or a daemon error: the status line and a dialog, never a traceback."""
    _set_status(group, f"error: {text}")
    nuke.message(f"CoolColor ({group.name()}): {text}")


# ---------------------------------------------------------------------------------------------------------------
# Keyframe buttons
# ---------------------------------------------------------------------------------------------------------------
def _keyframes(group: nuke.Node) -> list[int]:
    return parse_frames(text_of(group, "keyframes"))


def add_current_frame(group: nuke.Node) -> None:
    _edit_keyframes(group, add=int(nuke.frame()))


def remove_current_frame(group: nuke.Node) -> None:
    _edit_keyframes(group, remove=int(nuke.frame()))


def set_reference_frame(group: nuke.Node) -> None:
    """"set to current frame": the frame the artist is looking at (where the graded frame usually is)."""
    group["reference_frame"].setValue(int(nuke.frame()))


def _edit_keyframes(group: nuke.Node, add: int | None = None, remove: int | None = None) -> None:
    try:
        frames = set(_keyframes(group))
    except FrameListError as exc:
        _fail(group, str(exc))
        return
    if add is not None:
        frames.add(add)
    if remove is not None:
        frames.discard(remove)
    group["keyframes"].setValue(", ".join(str(f) for f in sorted(frames)))
    _update_label(group)


# ---------------------------------------------------------------------------------------------------------------
# From the node's knobs to jobs
# ---------------------------------------------------------------------------------------------------------------
def _read_colorspace(read: nuke.Node) -> str:
    """The colorspace a Read converts its file from, by name: ``default (sRGB)`` style values name the space."""
    name = str(read["colorspace"].value())
    if name.startswith("default"):
        inner = re.search(r"\((.*)\)", name)
        if inner:
            return inner.group(1)
        path = str(read["file"].value()).lower()
        return "linear" if path.endswith((".exr", ".hdr", ".dpx.float")) else "sRGB"
    return name


def _read_encoding(read: nuke.Node) -> tuple[str, str | None]:
    """A Read's colorspace knob → (job encoding, OCIO config)."""
    value = str(read["colorspace"].value())
    name = _read_colorspace(read)
    builtin = {"srgb": "srgb", "linear": "linear", "rec709": "rec709", "rec.709": "rec709"}.get(name.lower())
    if builtin is not None:
        return builtin, None
    config = ocio_config_path()
    if config is not None:
        return name, config
    raise NodeError(f"the input Read's colorspace '{value}' is not one the daemon knows (srgb, rec709, linear) and "
                    "the script has no OCIO config: set the input encoding knob")


def _is_plain_read(node: nuke.Node) -> bool:
    if node.Class() != "Read" or bool(node["disable"].value()):
        return False
    mode = node.knob("frame_mode")
    frame_knob = node.knob("frame")
    # retimed (a frame expression): the file frames are not the comp's frames
    return mode is None or frame_knob is None or not text_of(node, "frame").strip()


def _cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "coolcolor", "nuke")


def _upstream_nodes(node: nuke.Node) -> list[nuke.Node]:
    """``node`` and every node above it, each once."""
    found: list[nuke.Node] = []
    seen: set = set()
    stack: list[nuke.Node] = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        found.append(n)
        stack.extend(n.input(i) for i in range(n.inputs()) if n.input(i) is not None)  # type: ignore[misc]
    return found


def _read_file_stamp(read: nuke.Node, frame: int) -> str:
    """Size and mtime of the file a Read shows at ``frame`` (held at its ends), or "" when it has none."""
    first, last = int(read["first"].value()), int(read["last"].value())
    with contextlib.suppress(OSError, ValueError):
        st = os.stat(frame_file(str(read["file"].value()), min(max(frame, first), last)))
        return f"{st.st_size}:{st.st_mtime_ns}"
    return ""


def upstream_hash(node: nuke.Node, files_at: int | None = None) -> str:
    """What decides the upstream's pixels: Nuke's op hashes when available, else every upstream node's class and
    knob text (``toScript``), recursively (also what changes when a Read's file on disk is replaced: its mtime).
    ``files_at``: also the size and mtime of every upstream Read's file at that frame, whichever way the rest was
    hashed — a graded frame re-exported over its file changes no knob."""
    stamps = "" if files_at is None else ";".join(
        _read_file_stamp(n, files_at) for n in _upstream_nodes(node) if n.Class() == "Read")
    try:
        return ",".join(str(h) for h in node.opHashes()) + (f"|{stamps}" if stamps else "")
    except (AttributeError, RuntimeError, TypeError):
        pass
    parts: list[str] = []
    for n in _upstream_nodes(node):
        knobs = []
        for name, knob in sorted(n.knobs().items()):
            try:
                knobs.append(f"{name}={knob.toScript()}")
            except (AttributeError, RuntimeError, TypeError):
                knobs.append(f"{name}={getattr(knob, 'getText', knob.value)()}")
        parts.append(f"{n.Class()}:{';'.join(knobs)}")
        if n.Class() == "Read":
            parts.append(_read_file_stamp(n, int(n["first"].value())).partition(":")[2])
    if stamps:
        parts.append(stamps)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _render_upstream(group: nuke.Node, source: nuke.Node, first: int, last: int, *, input_name: str = "Source",
                     kind: str = "plate", colorspace: str = "linear", raw: bool = False) -> str:
    """Render the group's input ``input_name`` (connected to ``source``) through an internal Write (EXR half, rgb,
    written in ``colorspace`` or ``raw``) into a cache folder keyed by the upstream's hash; an unchanged upstream
    is not rendered again (so its file keeps its bytes, and a reference its content hash). Returns the file
    pattern. The plate (linear) and the reference (the plate file's own encoding, see ``_reference``) both come
    through here."""
    upstream = upstream_hash(source) if kind == "plate" else upstream_hash(source, files_at=first)
    key = hashlib.sha256(json.dumps([source.fullName(), upstream, first, last]
                                    + ([] if kind == "plate" else [colorspace, raw])).encode()).hexdigest()[:20]
    folder = os.path.join(_cache_root(), f"{kind}s", key)
    pattern = os.path.join(folder, f"{kind}.%04d.exr")
    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return pattern
    write_name = f"{kind.capitalize()}Write"
    with cast(nuke.Group, group):
        write = cast(nuke.Group, group).node(write_name) or nuke.nodes.Write(name=write_name)
        write.setInput(0, _inner(group, input_name))
        write["file"].setValue(pattern)
        write["file_type"].setValue("exr")
        write["datatype"].setValue("16 bit half")
        write["channels"].setValue("rgb")
        write["colorspace"].setValue(colorspace)
        write["raw"].setValue(raw)
        write["create_directories"].setValue(True)
    try:
        os.makedirs(folder, exist_ok=True)
        nuke.execute(write, first, last, 1)
    except (RuntimeError, OSError) as exc:
        raise NodeError(f"could not render the {input_name} input to {folder}: {exc}") from None
    with open(marker, "w", encoding="utf-8") as f:
        f.write(f"{first} {last}\n")
    return pattern


def _frame_range(group: nuke.Node, source: nuke.Node) -> tuple[int, int]:
    rng = source.frameRange()
    in_first, in_last = int(rng.first()), int(rng.last())
    if bool(group["use_input_range"].value()):
        first, last = in_first, in_last
    else:
        first, last = int(group["first"].value()), int(group["last"].value())
    handles = max(0, int(group["handles"].value()))
    first, last = max(in_first, first - handles), min(in_last, last + handles)
    if last < first:
        raise NodeError(f"the input has no frames in the range {first}-{last}")
    return first, last


def _output_dir(group: nuke.Node, settings_key: str) -> str:
    base = str(group["output_dir"].value()).strip()
    if not base:
        script = str(nuke.root()["name"].value()) if nuke.root().knob("name") is not None else ""
        parent = os.path.dirname(script) if script else _cache_root()
        base = os.path.join(parent, "coolcolor", group.name())
    return os.path.join(base, settings_key[:16])


def _check_writable(folder: str) -> None:
    probe = folder
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise NodeError(f"the output folder {folder} cannot be written (no write permission on {probe})")


def _reference_node(group: nuke.Node) -> nuke.Node | None:
    """What the Reference input is connected to; None when it is not (or the node predates the input)."""
    inner = cast(nuke.Group, group).node(REFERENCE_INPUT)
    if inner is None or group.knob("reference_frame") is None:
        return None
    return group.input(int(inner["number"].value()))


def _reference(group: nuke.Node, reference: nuke.Node, source: nuke.Node, frame: int,
               exemplar: bool) -> tuple[dict[str, Any], str]:
    """Render the Reference input at ``frame`` (the plate's renderer) and return the job's reference and its
    content hash. The EXR is written in the plate file's own encoding (a plain Read's colorspace, or raw like it;
    linear when the plate itself is rendered), so the daemon decodes reference and plate alike (float references
    are in the job's encoding, SPEC §3.4)."""
    if _is_plain_read(source):
        colorspace, raw = _read_colorspace(source), bool(source["raw"].value())
    else:
        colorspace, raw = "linear", False
    # Rendered again only when the upstream changed (a re-render writes new header bytes, e.g. its date, so the
    # same picture would hash as another job); the upstream's hash includes its Read files at this frame.
    pattern = _render_upstream(group, reference, frame, frame, input_name=REFERENCE_INPUT, kind="reference",
                               colorspace=colorspace, raw=raw)
    path = frame_file(pattern, frame)
    try:
        sha256 = file_sha256(path)
    except OSError as exc:
        raise NodeError(f"the Reference input's render {path} cannot be read: {exc.strerror or exc}") from None
    return {"frame": None if exemplar else frame, "path": path}, sha256


def plan(group: nuke.Node, preview: bool) -> tuple[list[PlannedJob], str]:
    """Read the knobs (main thread) into jobs. Raises NodeError naming the problem."""
    source = group.input(0)
    if source is None:
        raise NodeError("no input: connect the black-and-white plate to the Source input")
    if source.Class() == "Read" and not str(source["file"].value()).strip():
        raise NodeError(f"the input {source.name()} has no frames (its file is empty)")
    first, last = _frame_range(group, source)
    try:
        keyframes = _keyframes(group)
    except FrameListError as exc:
        raise NodeError(str(exc)) from None
    try:
        check_keyframes_in_range(keyframes, first, last)
    except KeyframeOutsideRange as exc:
        raise NodeError(str(exc)) from None
    reference = _reference_node(group)
    reference_frame = int(group["reference_frame"].value()) if reference is not None else 0
    exemplar = reference is not None and bool(group["reference_exemplar"].value())
    graded = reference is not None and not exemplar  # a frame of the plate: checked before anything is rendered
    if graded:
        try:
            check_keyframes_in_range([reference_frame], first, last, what="reference frame")
        except KeyframeOutsideRange as exc:
            raise NodeError(f"{exc}: set 'reference frame' to the plate frame the Reference input shows, "
                            "or tick 'exemplar'") from None
    if preview and not keyframes and not graded:
        raise NodeError("Preview keyframe needs a keyframe: press '+ current frame' first")
    choice = str(group["encoding"].value())
    ocio_config: str | None = None
    plate_encoding = "linear"  # what the plate is inside Nuke (a Read linearises it)
    if _is_plain_read(source):
        pattern = str(source["file"].value())
        if choice != AUTO_ENCODING:  # the artist knows better than the Read's colorspace knob
            encoding, ocio_config = choice, (None if choice in BUILTIN_ENCODINGS else ocio_config_path())
        else:
            encoding, ocio_config = _read_encoding(source)
        if bool(source["raw"].value()):
            plate_encoding = encoding if encoding in BUILTIN_ENCODINGS else "linear"
    else:
        # Nuke's working space, written without conversion: the EXR is linear whatever the knob says.
        pattern = _render_upstream(group, source, first, last)
        encoding = "linear"
    base = dict(source=pattern, prompt=text_of(group, "prompt"),
                negative_prompt=text_of(group, "negative_prompt"), seed=int(group["seed"].value()),
                steps=int(group["steps"].value()), guidance_scale=float(group["guidance"].value()),
                encoding=encoding, ocio_config=ocio_config, preview=True,
                window=max(1, int(group["window"].value())))
    # The reference's content is part of the job's identity (the node's key and folder below; the daemon's cache
    # key has it by job_key): another grade of the same frame is another job, never an earlier result.
    references: list[dict[str, Any]] = []
    identity: dict[str, Any] = {}
    if reference is not None:
        ref, sha256 = _reference(group, reference, source, reference_frame, exemplar)
        references, identity = [ref], {"reference_sha256": sha256}
    # Preview keyframe: one one-frame job per keyframe (any daemon honours that; a keyframe's pixels do not depend
    # on the rest of the shot), all writing into one folder so the node's Read sees every previewed frame. With a
    # graded frame the shot's keyframe is that frame (SPEC §5.2, keyframes_only), so the preview is that frame.
    if preview and graded:
        ranges = [(reference_frame, reference_frame, [reference_frame])]
    elif preview:
        ranges = [(k, k, [k]) for k in keyframes]
    else:
        ranges = [(first, last, keyframes)]
    # the folder is named by the settings and the reference's content (coolcolor_protocol.identity), so other
    # settings or another grade never share it, and the request (output folder included) changes with them
    folder_key = settings_digest(dict(base, first=first, last=last, keyframes=keyframes,
                                      kind="preview" if preview else "full", **identity))
    jobs: list[PlannedJob] = []
    for job_first, job_last, job_keys in ranges:
        fields: dict[str, Any] = dict(base, first=job_first, last=job_last, keyframes=job_keys)
        if references:
            fields["references"] = references
        fields["output_dir"] = _output_dir(group, folder_key)
        try:
            spec = JobSpec.from_dict(fields)
            spec.validate()
        except ProtocolError as exc:
            raise NodeError(exc.message) from None
        _check_writable(spec.output_dir)
        request = spec.to_dict()  # keyed as a whole, output folder included: another folder is another job
        jobs.append(PlannedJob(spec=request, key=idempotency_key("nuke", request)))
    set_recombination(_inner(group, "Recombine"), plate_encoding)
    return jobs, ("preview" if preview else "full")


# ---------------------------------------------------------------------------------------------------------------
# Buttons
# ---------------------------------------------------------------------------------------------------------------
def on_colorize(group: nuke.Node) -> None:
    _start(group, preview=False)


def on_preview(group: nuke.Node) -> None:
    _start(group, preview=True)


def _start(group: nuke.Node, preview: bool, attach: PlannedJob | None = None) -> JobRunner | None:
    name = group.fullName()
    running = _runners.get(name)
    if running is not None and running.is_alive():
        _fail(group, "a job is already running for this node: Cancel it first")
        return None
    try:
        if attach is not None:
            jobs, kind = [attach], str(group["job_kind"].value()) or "full"
        else:
            jobs, kind = plan(group, preview)
    except NodeError as exc:
        _fail(group, str(exc))
        return None
    if attach is None:
        group["job_kind"].setValue(kind)
        group["delivered"].setValue("")
        group["unknown_words"].setValue("")
        _reset_switch(group)
        _set_status(group, "submitting …")
    runner = JobRunner(name, jobs, Callbacks(_on_submitted, _on_frame, _on_progress, _on_finished, _on_failed),
                       connection=os.environ.get(CONNECTION_ENV) or None,
                       title=f"CoolColor {'preview' if kind == 'preview' else 'colorize'}: {group.name()}")
    _runners[name] = runner
    runner.start()
    return runner


def on_cancel(group: nuke.Node) -> None:
    runner = _runners.get(group.fullName())
    if runner is None or not runner.is_alive():
        _set_status(group, "nothing to cancel")
        return
    runner.cancel_requested.set()
    _set_status(group, "cancelling …")


def on_check_daemon(group: nuke.Node | None = None) -> str:
    """Check daemon / the CoolColor menu's "Daemon status": a short blocking hello (the daemon answers hello from
    its socket thread, never behind the model)."""
    from coolcolor_protocol import Client, DaemonUnavailable

    try:
        with Client(os.environ.get(CONNECTION_ENV) or None, name="coolcolor-nuke", timeout=3.0) as client:
            hello = client.hello(3.0)
            ping = client.request("ping", {}, 3.0)
    except (ProtocolError, DaemonUnavailable, OSError):
        text = START_DAEMON_HINT
    else:
        model = hello.get("model", {})
        text = (f"daemon {hello.get('server', {}).get('version', '?')} ready: model {model.get('state')} "
                f"({str(model.get('hash', ''))[:12]}, {model.get('device', '?')}), "
                f"{ping.get('queued', 0)} queued, running {ping.get('running') or 'nothing'}")
    if group is not None:
        _set_status(group, text)
    nuke.message(f"CoolColor: {text}")
    return text


def on_create(group: nuke.Node) -> None:
    """onCreate (a script is opened, or the node pasted): declare the ab layer and re-attach to an unfinished job."""
    nuke.Layer(AB_LAYER, list(AB_CHANNELS))
    job_id = str(group["job_id"].value()).strip()
    if not job_id or str(group["job_state"].value()) in TERMINAL_STATES:
        return
    try:
        have = set(parse_frames(str(group["delivered"].value())))
    except FrameListError:
        have = set()
    _set_status(group, "re-attaching to the daemon's job …")
    _start(group, preview=False, attach=PlannedJob(spec={}, key="", job_id=job_id, have=have))


def runner_for(group: nuke.Node) -> JobRunner | None:
    return _runners.get(group.fullName())


# ---------------------------------------------------------------------------------------------------------------
# The worker's reports (executeInMainThread)
# ---------------------------------------------------------------------------------------------------------------
def _alive(name: str) -> nuke.Node | None:
    """The node, or None when it was deleted (or the script closed): then the runner stops listening and the
    daemon's job goes on."""
    node = nuke.toNode(name)
    if node is None:
        runner = _runners.pop(name, None)
        if runner is not None:
            runner.orphaned.set()
    return node


def _reset_switch(group: nuke.Node) -> None:
    which = _inner(group, "ColorizedOrPlate")["which"]
    which.clearAnimated()
    which.setValue(0)


def _delivered(group: nuke.Node) -> list[int]:
    try:
        return parse_frames(str(group["delivered"].value()))
    except FrameListError:
        return []


def _on_submitted(name: str, job_id: str, reply: dict[str, Any], spec: dict[str, Any], index: int, total: int,
                  model_hash: str) -> None:
    group = _alive(name)
    if group is None:
        return
    group["job_id"].setValue(job_id)
    group["job_state"].setValue(str(reply.get("state", "queued")))
    output = reply.get("output") or {}
    pattern = str(output.get("pattern") or "")
    if not pattern:
        folder = str(output.get("dir") or reply.get("output_dir") or spec.get("output_dir", ""))
        pattern = os.path.join(folder, AB_FILE_PATTERN)
    read_ab = _inner(group, "ReadAB")
    read_ab["file"].setValue(pattern)
    first = int(_first_not_none(reply.get("first"), output.get("first"), spec.get("first"), 0))
    last = int(_first_not_none(reply.get("last"), output.get("last"), spec.get("last"), first))
    if str(group["job_kind"].value()) == "preview":
        known = _delivered(group) + [first, last]
        first, last = min(known), max(known)
    for knob, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
        read_ab[knob].setValue(value)
    which = _inner(group, "ColorizedOrPlate")["which"]
    which.setAnimated()
    have = set(_delivered(group))
    for f in range(first, last + 1):
        which.setValueAt(1 if f in have else 0, f)
    words = reply.get("unknown_words") or []
    if words:
        group["unknown_words"].setValue(", ".join(str(w) for w in words))
    if model_hash:
        group["model_hash"].setValue(model_hash)
    group["frames_seed"].setValue(str(spec.get("seed", "")))
    group["frames_keyframes"].setValue(format_frames(spec.get("keyframes") or []))
    from_cache = reply.get("cached") or (reply.get("duplicate") and reply.get("state") == "done")
    cached = " (answered from the daemon's cache: nothing computed)" if from_cache else ""
    prefix = f"keyframe {index + 1}/{total}: " if total > 1 else ""
    _set_status(group, f"{prefix}job {reply.get('state', 'queued')}{cached}; fetching frames — frames not yet "
                       "colorized show the plate")


def _first_not_none(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _on_frame(name: str, frame: int, path: str) -> None:
    group = _alive(name)
    if group is None:
        return
    frames = set(_delivered(group))
    frames.add(frame)
    group["delivered"].setValue(format_frames(frames))
    _inner(group, "ColorizedOrPlate")["which"].setValueAt(1, frame)


def _on_progress(name: str, text: str) -> None:
    group = _alive(name)
    if group is None:
        return
    n = len(_delivered(group))
    _set_status(group, f"{text} — {n} frame(s) colorized; frames not yet colorized show the plate")


def _on_finished(name: str, job_id: str, final: dict[str, Any], index: int, total: int) -> None:
    group = _alive(name)
    if group is None:
        return
    state = str(final.get("state"))
    group["job_state"].setValue(state)
    words = final.get("unknown_words") or (final.get("job") or {}).get("unknown_words") or []
    if words:
        group["unknown_words"].setValue(", ".join(str(w) for w in words))
    cached = " from the daemon's cache (nothing computed)" if final.get("cached") else ""
    done = len(_delivered(group))
    if state == "done":
        if index + 1 < total:
            _set_status(group, f"keyframe {index + 1}/{total} done{cached}")
            return
        _set_status(group, f"done{cached}: {done} frame(s) colorized")
    elif state == "cancelled":
        _set_status(group, f"cancelled: {done} frame(s) kept, the others show the plate")
    else:
        error = final.get("error") or {}
        _fail(group, f"daemon error {error.get('code', '?')}: {error.get('message', state)}")


def _on_failed(name: str, text: str, code: int | None) -> None:
    group = _alive(name)
    if group is None:
        return
    _fail(group, text)


def temp_dir() -> str:
    return tempfile.gettempdir()
