"""The ``.comp`` text put on a timeline item: MediaIn1 (the clip) and a Loader (the ab sidecar, R = a*, G = b*)
into a Custom Tool whose expressions come from the shared expression tree, into MediaOut1.

Why a file and not live edits: scripted comp edits are reported not to render on Resolve 21.1 and a value written
under ``comp.Lock()`` is not rendered [docs/hosts.md R2]; the comp is written as text,
kept in the job's output folder and imported with ``TimelineItem.ImportFusionComp`` [README TimelineItem]. The
Loader reads plain R, G of the sidecar because scripted EXR channel selection is reported ignored (R3). The
Custom Tool uses ``^``, never ``pow()`` (R1). MediaOut1 descends from MediaIn1, or Resolve bypasses the comp
[R-LIM "TimelineItem.AddFusionComp / LoadFusionCompByName"].
"""

from __future__ import annotations

from coolcolor_protocol.recombine import fusion_expressions

LOADER = "CoolColorAB"
CUSTOM = "CoolColorRecombine"


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def comp_text(*, sidecar_first_file: str, sidecar_first: int, sidecar_last: int, clip_first: int,
              duration: int, encoding: str) -> str:
    """Comp time runs 0 … duration−1 over the clip (docs/hosts.md R2: clip-relative comp time, [U]); the Loader's
    sequence starts at ``sidecar_first`` (handles included), so it is trimmed to the clip's first frame."""
    trim_in = clip_first - sidecar_first
    length = sidecar_last - sidecar_first + 1
    inputs: dict[str, str] = fusion_expressions(encoding).inputs()
    expr_lines = "".join(f"\t\t\t\t{k} = Input {{ Value = {lua_string(v)}, }},\n" for k, v in inputs.items())
    return (
        "Composition {\n"
        f"\tCurrentTime = 0,\n\tRenderRange = {{ 0, {duration - 1} }},\n\tGlobalRange = {{ 0, {duration - 1} }},\n"
        "\tTools = ordered() {\n"
        "\t\tMediaIn1 = MediaIn {\n"
        "\t\t\tViewInfo = OperatorInfo { Pos = { 0, 0 } },\n"
        "\t\t},\n"
        f"\t\t{LOADER} = Loader {{\n"
        "\t\t\tClips = {\n"
        "\t\t\t\tClip {\n"
        f"\t\t\t\t\tID = \"Clip1\",\n\t\t\t\t\tFilename = {lua_string(sidecar_first_file)},\n"
        "\t\t\t\t\tFormatID = \"OpenEXRFormat\",\n"
        f"\t\t\t\t\tStartFrame = {sidecar_first},\n\t\t\t\t\tLength = {length},\n"
        f"\t\t\t\t\tTrimIn = {trim_in},\n\t\t\t\t\tTrimOut = {trim_in + duration - 1},\n"
        "\t\t\t\t\tExtendFirst = 0,\n\t\t\t\t\tExtendLast = 0,\n\t\t\t\t\tLoop = 0,\n"
        f"\t\t\t\t\tGlobalStart = 0,\n\t\t\t\t\tGlobalEnd = {duration - 1},\n"
        "\t\t\t\t},\n"
        "\t\t\t},\n"
        "\t\t\tViewInfo = OperatorInfo { Pos = { 0, 60 } },\n"
        "\t\t},\n"
        f"\t\t{CUSTOM} = Custom {{\n"
        "\t\t\tInputs = {\n"
        f"{expr_lines}"
        "\t\t\t\tImage1 = Input { SourceOp = \"MediaIn1\", Source = \"Output\", },\n"
        f"\t\t\t\tImage2 = Input {{ SourceOp = \"{LOADER}\", Source = \"Output\", }},\n"
        "\t\t\t},\n"
        "\t\t\tViewInfo = OperatorInfo { Pos = { 110, 0 } },\n"
        "\t\t},\n"
        "\t\tMediaOut1 = MediaOut {\n"
        "\t\t\tInputs = {\n"
        f"\t\t\t\tInput = Input {{ SourceOp = \"{CUSTOM}\", Source = \"Output\", }},\n"
        "\t\t\t},\n"
        "\t\t\tViewInfo = OperatorInfo { Pos = { 220, 0 } },\n"
        "\t\t},\n"
        "\t},\n"
        "}\n"
    )
