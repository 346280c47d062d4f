"""The whole ``coolcolor`` command line against bad arguments and bad inputs, as one table.

Commands covered: init, demo, colorize, world render|eval, serve, submit, status, cancel, jobs,
plugins install|uninstall, farm export-openjd|run-window|finish, train, train-eval.

Every row runs one command that must fail, and the same rules hold for all of them:

* a non-zero exit (2 for bad arguments, 1 for bad input or a refusing system);
* exactly one line on stderr, which names the problem (the row's pattern), and no ``Traceback``
  (rows that get as far as colorizing may also print their progress lines, never another error);
* nothing already written is lost: every file that existed in the row's folder before the command
  is still there afterwards, unchanged (a job's own manifest.json may record the failure).

Rows run in-process through ``coolcolor.cli.main`` (fast); ``SUBPROCESS_ROWS`` run again as real
``coolcolor`` processes, to show that no traceback reaches a terminal. Placeholders in ``argv``
(``{ckpt}``, ``{seq}``, …) are the fixtures described in ``Workspace``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from coolcolor import cli

# ----------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    command: str
    problem: str
    argv: tuple[str, ...]
    message: str  # regex the one stderr line must match
    setup: Callable[[Workspace], None] | None = None  # makes the bad input / turns on a fault
    check: Callable[[Workspace], None] | None = None  # what must hold afterwards, beyond the common rules
    exit_code: int = 1
    progress: bool = False  # the job got to colorizing: progress lines may accompany the error line
    process: bool = False  # always run as a real process (serve: a daemon that starts never returns)


def C(command: str, problem: str, argv: str | list[str], message: str, **kw) -> Case:
    return Case(command, problem, tuple(argv.split() if isinstance(argv, str) else argv), message, **kw)


USAGE = 2


def full_disk_after(files: int) -> Callable[[Workspace], None]:
    """Simulate ENOSPC: the first ``files`` atomic writes (frames and manifests alike) succeed, every
    later one fails half-written, as on a disk that has just filled up."""

    def setup(ws: Workspace) -> None:
        from coolcolor.video import exr

        real = exr.atomic_write
        count = {"n": 0}

        def atomic_write(path, write):
            count["n"] += 1
            if count["n"] <= files:
                return real(path, write)

            def half_then_full(tmp):
                with open(tmp, "wb") as f:
                    f.write(b"\0" * 100)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

            return real(path, half_then_full)

        for module in list(sys.modules.values()):  # wherever the engine imported it from
            if getattr(module, "__name__", "").startswith("coolcolor") and getattr(module, "atomic_write", None) is real:
                ws.monkeypatch.setattr(module, "atomic_write", atomic_write)

    return setup


def world_disk_full(ws: Workspace) -> None:
    """ENOSPC while ``world render`` writes its PNGs (cv2.imwrite only returns False then)."""
    import coolcolor.world.clip as clip

    real = clip.cv2.imwrite
    count = {"n": 0}

    def imwrite(path, *a, **kw):
        count["n"] += 1
        return real(path, *a, **kw) if count["n"] <= 2 else False

    ws.monkeypatch.setattr(clip.cv2, "imwrite", imwrite)


def disk_full_on_write(target: str) -> Callable[[Workspace], None]:
    """ENOSPC when anything opens a file named ``target`` for writing."""

    def setup(ws: Workspace) -> None:
        import builtins
        import io

        real_open = io.open

        def open_(file, mode="r", *a, **kw):
            if os.path.basename(os.fsdecode(file)) == target and any(c in mode for c in "wax"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(file))
            return real_open(file, mode, *a, **kw)

        ws.monkeypatch.setattr(builtins, "open", open_)
        ws.monkeypatch.setattr(io, "open", open_)  # pathlib's write_text

    return setup


def no_partial_checkpoint(ws: Workspace) -> None:
    assert not os.path.exists(ws.fill("{out}"))
    assert not [p.name for p in ws.tmp.iterdir() if p.name.endswith(".partial")]


def precious_in(folder: str) -> Callable[[Workspace], None]:
    """Put a file the command must not touch into ``{folder}`` (it exists, and is not empty)."""

    def setup(ws: Workspace) -> None:
        path = Path(ws.fill(folder))
        path.mkdir(parents=True, exist_ok=True)
        (path / "precious.txt").write_text("an artist's notes")

    return setup


def frames_kept(*frames: int) -> Callable[[Workspace], None]:
    """The frames finished before the fault are whole and readable, and no half-written file is left."""

    def check(ws: Workspace) -> None:
        from coolcolor.video.exr import read_ab_exr

        out = Path(ws.fill("{out}"))
        assert sorted(p.name for p in out.glob("ab.*.exr")) == [f"ab.{f:04d}.exr" for f in frames]
        for f in frames:
            ab, header = read_ab_exr(str(out / f"ab.{f:04d}.exr"))
            assert ab.shape[-1] == 2 and header["frame"] == f
        assert not [p.name for p in out.iterdir() if ".tmp" in p.name]

    return check


def nothing_created(placeholder: str) -> Callable[[Workspace], None]:
    def check(ws: Workspace) -> None:
        assert not os.path.exists(ws.fill(placeholder)), f"{ws.fill(placeholder)} was created"

    return check


def previews_as_source_in_out(ws: Workspace) -> None:
    """The plates in the output folder itself, named as CoolColor names its previews."""
    out = Path(ws.fill("{out}"))
    out.mkdir()
    for frame in Path(ws.fill("{seq}")).parent.glob("gray.*.png"):
        shutil.copy(frame, out / frame.name.replace("gray.", "preview."))


def no_ab_files(ws: Workspace) -> None:
    assert not list(Path(ws.fill("{out}")).glob("ab.*.exr"))


COLORIZE = ["colorize", "{seq}", "-o", "{out}", "--model", "{ckpt}", "--steps", "1", "--device", "cpu"]
SUBMIT = ["submit", "{seq}", "-o", "{out}"]
NO_DAEMON = r"no CoolColor daemon connection file at .*no-daemon\.json \(is the daemon running\? start it"
SERVE = "serve --tiny-model --state-dir {tmp}/state --connection-file {tmp}/c.json"

CASES: list[Case] = [
    # ---- init --from-sd15
    C("init", "no --from-sd15", "init {out}", r"required: --from-sd15", exit_code=USAGE),
    C("init", "SD folder missing", "init --from-sd15 {missing} {out}", r"SD-1\.5 folder .*missing is not a folder",
      check=nothing_created("{out}")),
    C("init", "SD folder is a file", "init --from-sd15 {a_file} {out}", r"a_file\.txt is not a folder"),
    C("init", "resolution not a number", "init --from-sd15 {sd} {out} --resolution big",
      r"argument --resolution: invalid int value: 'big'", exit_code=USAGE),
    C("init", "resolution out of range", "init --from-sd15 {sd} {out} --resolution 60",
      r"resolution must be a positive multiple of 8, got 60", check=nothing_created("{out}")),
    C("init", "UNet with one attention up block", "init --from-sd15 {sd_one_attention} {out}",
      r"keyframe attention needs at least 2 up blocks with attention .*found 1 \(up blocks: CrossAttnUpBlock2D, "
      r"UpBlock2D", check=nothing_created("{out}")),
    C("init", "truncated UNet weights", "init --from-sd15 {sd_truncated} {out}",
      r"SD-1\.5 folder .*cannot load .*unet", check=nothing_created("{out}")),
    C("init", "output folder not empty", "init --from-sd15 {sd} {out}", r"exists and is not empty; refusing",
      setup=precious_in("{out}")),
    C("init", "output folder is a file", "init --from-sd15 {sd} {a_file}", r"a_file\.txt exists and is not a folder"),
    C("init", "disk full while writing", "init --from-sd15 {sd} {out}",
      r"No space left on device: .*coolcolor\.json", setup=disk_full_on_write("coolcolor.json"),
      check=no_partial_checkpoint),
    # ---- demo
    C("demo", "frames not a number", "demo --frames many -o {out}", r"argument --frames: invalid int value",
      exit_code=USAGE),
    C("demo", "no frames", "demo --frames 0 -o {out}", r"--frames must be at least 1, got 0"),
    C("demo", "no steps", "demo --steps 0 -o {out}", r"--steps must be at least 1, got 0", check=nothing_created("{out}")),
    C("demo", "output is a file", "demo --frames 1 --steps 1 -o {a_file}", r"a_file\.txt .*not a folder"),
    C("demo", "disk full", "demo --frames 2 --steps 1 -o {out}", r"could not write .*gray\.0000\.png",
      setup=lambda ws: ws.monkeypatch.setattr("cv2.imwrite", lambda *a, **k: False)),
    # ---- colorize
    C("colorize", "no -o", "colorize {seq}", r"required: -o/--output", exit_code=USAGE),
    C("colorize", "source missing", [*COLORIZE[:1], "{missing}.%04d.png", *COLORIZE[2:]],
      r"(no frames match|source not found).*missing", check=nothing_created("{out}")),
    C("colorize", "steps not a number", [*COLORIZE, "--steps", "x"], r"--steps: invalid int value: 'x'",
      exit_code=USAGE),
    C("colorize", "steps out of range", [*COLORIZE, "--steps", "0"], r"job\.steps: 0 is outside 1\.\.500"),
    C("colorize", "guidance not finite", [*COLORIZE, "--guidance-scale", "nan"], r"guidance"),
    C("colorize", "window out of range", [*COLORIZE, "--window", "0"], r"window"),
    C("colorize", "first after last", [*COLORIZE, "--first", "4", "--last", "2"], r"first.*last|last.*first"),
    C("colorize", "keyframe outside the range", [*COLORIZE, "--keyframe", "99"],
      r"keyframe\(s\) 99 outside the frame range 1-4"),
    C("colorize", "unknown encoding", [*COLORIZE, "--encoding", "acescg"], r"acescg"),
    C("colorize", "OCIO config missing", [*COLORIZE, "--encoding", "ACEScg", "--ocio-config", "{missing}.ocio"],
      r"missing\.ocio"),
    C("colorize", "CLIP model folder missing", [*COLORIZE, "--clip-model", "{missing}"],
      r"CLIP model folder not found: .*missing"),
    C("colorize", "model folder missing", [*COLORIZE, "--model", "{missing}"], r"model folder not found: .*missing",
      check=no_ab_files),
    C("colorize", "model is a file", [*COLORIZE, "--model", "{a_file}"], r"model .*a_file\.txt is a file, not a checkpoint folder"),
    C("colorize", "truncated checkpoint", [*COLORIZE, "--model", "{ckpt_truncated}"],
      r"checkpoint .*cannot load .*unet", check=no_ab_files),
    C("colorize", "corrupt coolcolor.json", [*COLORIZE, "--model", "{ckpt_corrupt_json}"],
      r"cannot read coolcolor\.json"),
    C("colorize", "checkpoint of the wrong architecture", [*COLORIZE, "--model", "{ckpt_one_attention}"],
      r"checkpoint .*unet: keyframe attention needs at least 2 up blocks with attention .*found 1",
      check=no_ab_files),
    C("colorize", "SD folder, not a CoolColor checkpoint", [*COLORIZE, "--model", "{sd}"],
      r"sd15 has no coolcolor\.json: it is neither a CoolColor checkpoint nor a training run folder"),
    C("colorize", "output file on a source frame", ["colorize", "{out}/preview.%04d.png", *COLORIZE[2:], "--preview"],
      r"output folder .*out holds the source and this job would write over 4 of its frame file\(s\) \(preview\.0001\."
      r"png, preview\.0002\.png, preview\.0003\.png, …\); choose another output folder",
      setup=previews_as_source_in_out, check=no_ab_files),
    C("colorize", "output is a file", [*COLORIZE, "-o", "{a_file}"], r"cannot create output folder .*a_file\.txt"),
    C("colorize", "unreadable frame header", [*COLORIZE[:1], "{seq_bad_header}", *COLORIZE[2:]],
      r"cannot read image .*gray\.0002\.png: PNG read error", check=no_ab_files),  # every header is read first
    C("colorize", "truncated frame", [*COLORIZE[:1], "{seq_truncated}", *COLORIZE[2:]],
      r"frame 2: cannot decode image .*gray\.0002\.png", progress=True, check=frames_kept(1, 3, 4)),
    C("colorize", "disk full after two frames", COLORIZE, r"No space left on device: .*ab\.0003\.exr",
      setup=full_disk_after(3), progress=True, check=frames_kept(1, 2)),  # the manifest, ab.0001, ab.0002
    # ---- world render | eval
    C("world render", "frames out of range", "world render --frames 0 {out}", r"frame count must be a positive"),
    C("world render", "seed negative", "world render --seed -1 {out}", r"seed must be a non-negative integer"),
    C("world render", "size malformed", "world render --size 128 {out}", r"size '128' is not of the form WIDTHxHEIGHT"),
    C("world render", "damage not a number", "world render --damage lots {out}", r"--damage: invalid float value",
      exit_code=USAGE),
    C("world render", "damage negative", "world render --damage -1 {out}", r"--damage must be a number >= 0"),
    C("world render", "too many objects", "world render --objects 9 {out}", r"objects must be between 1 and 4"),
    C("world render", "unknown color", "world render --colors red,mauve {out}", r"unknown palette color 'mauve'"),
    C("world render", "output not empty", "world render --frames 1 {out}", r"is not empty and holds no clip",
      setup=precious_in("{out}")),
    C("world render", "output is a file", "world render --frames 1 {a_file}", r"a_file\.txt exists and is not a directory"),
    C("world render", "disk full", "world render --frames 2 --size 32x32 {out}", r"could not write .*\.png",
      setup=world_disk_full),
    C("world eval", "prediction missing", "world eval {missing} {clip}", r"missing"),
    C("world eval", "ground truth not a clip", "world eval {clip}/color {a_dir}", r"is not a world clip"),
    C("world eval", "caption out of range", "world eval {clip}/color {clip} --caption 99", r"caption index 99 is out of range: the clip has \d+ captions"),
    C("world eval", "caption not a number", "world eval {clip}/color {clip} --caption first",
      r"--caption: invalid int value", exit_code=USAGE),
    C("world eval", "bad --ab-channels", "world eval {clip}/color {clip} --ab-channels a", r"--ab-channels must be two"),
    C("world eval", "unreadable prediction frame", "world eval {pred_bad_frame} {clip}", r"color\.0002\.png"),
    # ---- serve
    C("serve", "port not a number", "serve --port http", r"--port: must be an integer in 0…65535, got 'http'",
      exit_code=USAGE, process=True),
    C("serve", "port out of range", SERVE + " --port 70000", r"--port: must be an integer in 0…65535, got 70000",
      exit_code=USAGE, process=True),
    C("serve", "port in use", SERVE + " --port {busy_port}", r"cannot listen on 127\.0\.0\.1:\d+: Address already in use",
      process=True, check=nothing_created("{tmp}/c.json")),
    C("serve", "model folder missing", SERVE.replace("--tiny-model", "--model {missing}"),
      r"model folder not found: .*missing", process=True, check=nothing_created("{tmp}/c.json")),
    C("serve", "root not a folder", SERVE + " --root {missing}", r"--root .*missing is not a folder", process=True),
    C("serve", "curve secret without clients", SERVE + " --curve-secret {a_file}",
      r"--curve-secret and --curve-clients go together", process=True),
    C("serve", "state folder is a file", SERVE.replace("{tmp}/state", "{a_file}"),
      r"state folder .*a_file\.txt is a file, not a folder", process=True, check=nothing_created("{tmp}/c.json")),
    C("serve", "max queued jobs out of range", SERVE + " --max-queued-jobs 0",
      r"--max-queued-jobs: must be an integer ≥ 1, got 0", exit_code=USAGE, process=True),
    # ---- submit | status | cancel | jobs
    C("submit", "no daemon running", [*SUBMIT, "--connection-file", "{no_daemon}"],
      NO_DAEMON),
    C("submit", "daemon gone (stale connection file)", [*SUBMIT, "--connection-file", "{dead_daemon}", "--timeout", "600"],
      r"the CoolColor daemon is not running: connection file .*dead\.json is stale \(its daemon, pid \d+ on .*, has "
      r"exited\); start it with `coolcolor serve`"),
    C("submit", "no answer (a file from another host)", [*SUBMIT, "--connection-file", "{other_host_daemon}",
                                                          "--timeout", "1"],
      r"no reply to hello within 1\.0 s from the daemon at tcp://127\.0\.0\.1:\d+ \(code 503\)"),
    C("submit", "steps not a number", [*SUBMIT, "--steps", "x"], r"--steps: invalid int value", exit_code=USAGE),
    C("submit", "timeout out of range", [*SUBMIT, "--timeout", "-1", "--connection-file", "{no_daemon}"],
      r"--timeout: must be a number > 0, got -1", exit_code=USAGE),
    C("submit", "steps out of range", [*SUBMIT, "--steps", "0", "--connection-file", "{daemon}"],
      r"job\.steps: 0 is outside 1\.\.500"),  # checked by JobSpec before the daemon is asked
    C("submit", "source missing", ["submit", "{missing}.%04d.png", "-o", "{out}", "--connection-file", "{daemon}"],
      r"missing.*\(code 4\d\d\)"),
    C("status", "no job id", "status", r"required: job_id", exit_code=USAGE),
    C("status", "no daemon running", "status 0123 --connection-file {no_daemon}", NO_DAEMON),
    C("status", "job id that does not exist", "status 00000000000000000000000000000000 --connection-file {daemon}",
      r"no job 00000000.*\(code 404\)"),
    C("cancel", "no daemon running", "cancel 0123 --connection-file {no_daemon}", NO_DAEMON),
    C("cancel", "malformed job id", "cancel feedface --connection-file {daemon}",
      r"cancel\.job_id: must be a job id \(32 lowercase hex digits\), got 'feedface' \(code 400\)"),
    C("cancel", "job id that does not exist", "cancel 0123456789abcdef0123456789abcdef --connection-file {daemon}",
      r"no job 0123456789abcdef0123456789abcdef \(code 404\)"),
    C("jobs", "no daemon running", "jobs --connection-file {no_daemon}", NO_DAEMON),
    C("jobs", "unknown state", "jobs --state lost", r"argument --state: invalid choice: 'lost'", exit_code=USAGE),
    C("jobs", "limit out of range", "jobs --limit 0 --connection-file {daemon}", r"--limit: must be an integer ≥ 1, got 0",
      exit_code=USAGE),
    C("jobs", "corrupt connection file", "jobs --connection-file {a_file}", r"cannot read connection file .*a_file"),
    # ---- train | train-eval
    C("train", "config missing", "train --config {missing}.json", r"config file .*missing\.json does not exist"),
    C("train", "config is a folder", "train --config {a_dir}", r"config file .*a_dir is a folder, not a file"),
    C("train", "config not JSON", "train --config {bad_json}", r"not valid JSON"),
    C("train", "unknown key", "train --output {out} --set colour=red", r"unknown key\(s\) colour"),
    C("train", "--set without =", "train --output {out} --set steps", r"--set 'steps': expected KEY=VALUE"),
    C("train", "steps not a number", "train --output {out} --steps many", r"--steps: invalid int value",
      exit_code=USAGE),
    C("train", "steps out of range", "train --output {out} --steps 0", r"steps must be ≥ 1"),
    C("train", "wrong type", "train --output {out} --set batch_size=\"big\"", r"batch_size.*an integer"),
    C("train", "no run folder", "train --steps 1", r"output \(the run folder\) is required"),
    C("train", "run folder is a file", "train --output {a_file} --steps 1",
      r"run folder .*a_file\.txt is a file, not a folder \(--output\)"),
    C("train", "init_from missing", "train --output {out} --steps 1 --set init_from={missing}", r"missing"),
    C("train", "init_from of the wrong architecture", "train --output {out} --steps 1 --set init_from={ckpt_one_attention}",
      r"keyframe attention needs at least 2 up blocks"),
    # ---- plugins install | uninstall (always with --target: never the real ~/.nuke or Fusion folder)
    C("plugins install", "no host", "plugins install --target {out}", r"required: HOST", exit_code=USAGE),
    C("plugins install", "unknown host", "plugins install maya --target {out}",
      r"unknown host 'maya': choose one of nuke, resolve"),
    C("plugins install", "target is a file", "plugins install nuke --target {a_file}",
      r"cannot install into .*a_file\.txt: .*is not a folder"),
    C("plugins install", "plugin sources missing", "plugins install nuke --target {out} --from {missing}",
      r"plugin sources not found: .*missing", check=nothing_created("{out}/coolcolor")),
    C("plugins install", "host Python missing", "plugins install nuke --target {out} --host-python {missing}/python3",
      r"--host-python .*missing/python3: no such program"),
    C("plugins install", "wheel folder missing", "plugins install nuke --target {out} --wheel-dir {missing}",
      r"--wheel-dir .*missing is not a folder", check=nothing_created("{out}/coolcolor")),
    C("plugins install", "disk full", "plugins install nuke --target {out}",
      r"cannot write .*out/coolcolor/init\.py: No space left on device",  # the studio's own init.py stays whole
      setup=lambda ws: (precious_in("{out}")(ws), (Path(ws.fill("{out}")) / "init.py").write_text("# the studio's\n"),
                        disk_full_on_write(".init.py.coolcolor-tmp")(ws)),
      check=lambda ws: not list(Path(ws.fill("{out}")).glob(".*coolcolor-tmp")) or pytest.fail("temporary left")),
    C("plugins uninstall", "not installed", "plugins uninstall nuke --target {a_dir}",
      r"the nuke plugin is not installed in .*a_dir"),
    # ---- farm export-openjd | run-window | finish
    C("farm export-openjd", "source missing",
      "farm export-openjd {missing}.%04d.png -o {out} --template {out}/job.yaml --model {ckpt}",
      r"no frames match .*missing\.%04d\.png", check=nothing_created("{out}/job.yaml")),
    C("farm export-openjd", "no --template", "farm export-openjd {seq} -o {out}", r"required: --template",
      exit_code=USAGE),
    C("farm run-window", "plan missing", "farm run-window {missing}.json --window 1:1-4",
      r"cannot read the farm plan .*missing\.json"),
    C("farm run-window", "plan corrupt", "farm run-window {bad_json} --window 1:1-4",
      r"cannot read the farm plan .*bad\.json"),
    C("farm finish", "plan missing", "farm finish {missing}.json", r"cannot read the farm plan .*missing\.json"),
    C("train-eval", "no model", "train-eval", r"required: NAME=CHECKPOINT", exit_code=USAGE),
    C("train-eval", "model missing", "train-eval m={missing} --clips 1 --frames 2 --steps 1", r"missing"),
    C("train-eval", "truncated checkpoint", "train-eval m={ckpt_truncated} --clips 1 --frames 2 --steps 1",
      r"cannot load .*unet"),
    C("train-eval", "wrong architecture", "train-eval m={ckpt_one_attention} --clips 1 --frames 2 --steps 1",
      r"keyframe attention needs at least 2 up blocks"),
    C("train-eval", "clips out of range", "train-eval m={ckpt} --clips 0", r"--clips: must be an integer ≥ 1, got 0",
      exit_code=USAGE),
    C("train-eval", "steps out of range", "train-eval m={ckpt} --steps 0", r"--steps: must be an integer in 1…1000",
      exit_code=USAGE),
    C("train-eval", "size out of range", "train-eval m={ckpt} --size 7", r"--size: must be an integer ≥ 8, got 7",
      exit_code=USAGE),
    C("train-eval", "clips not a number", "train-eval m={ckpt} --clips some", r"--clips: must be an integer ≥ 1, got 'some'",
      exit_code=USAGE),
    C("train-eval", "degradation negative", "train-eval m={ckpt} --degradation -1", r"--degradation must be a number ≥ 0"),
    C("train-eval", "JSON folder missing", "train-eval m={ckpt} --clips 1 --frames 2 --steps 1 --json {missing}/r.json",
      r"--json .*r\.json: folder .*missing does not exist"),
]

# Rows that also run as real processes: no traceback may reach a terminal, whatever the layer.
SUBPROCESS_ROWS = [
    "init: UNet with one attention up block",
    "colorize: checkpoint of the wrong architecture",  # the traceback
    "status: no daemon running",
    "world render: size malformed",
]


# ----------------------------------------------------------------------------------------- fixtures


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _one_attention_unet(in_channels: int):
    """A diffusers UNet with a single cross-attention up block (the shape the issue's init accepted)."""
    from diffusers import UNet2DConditionModel

    from coolcolor.model.presets import TINY_UNET_CONFIG

    config = dict(TINY_UNET_CONFIG, in_channels=in_channels,
                  down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"))
    return UNet2DConditionModel(**config)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    """Read-only inputs shared by every row (rows that damage something work on a copy)."""
    import cv2

    from conftest import build_sd15_like_folder
    from coolcolor.daemon.testing import write_gray_sequence
    from coolcolor.model.presets import tiny_pipeline

    root = tmp_path_factory.mktemp("cli-assets")
    a: dict[str, str] = {}
    ckpt = root / "ckpt"
    tiny_pipeline(seed=0).save_pretrained(ckpt)
    a["ckpt"] = str(ckpt)
    sd = build_sd15_like_folder(root / "sd15")
    a["sd"] = str(sd)

    sd_one = root / "sd15-one-attention"
    shutil.copytree(sd, sd_one)
    shutil.rmtree(sd_one / "unet")
    _one_attention_unet(4).save_pretrained(sd_one / "unet")  # diffusers' own save_pretrained
    a["sd_one_attention"] = str(sd_one)

    ckpt_one = root / "ckpt-one-attention"  # what the old `init` wrote from that folder
    shutil.copytree(ckpt, ckpt_one)
    shutil.rmtree(ckpt_one / "unet")
    _one_attention_unet(8).save_pretrained(ckpt_one / "unet")
    a["ckpt_one_attention"] = str(ckpt_one)

    for name, src in (("ckpt_truncated", ckpt), ("sd_truncated", sd)):
        copy = root / name
        shutil.copytree(src, copy)
        _truncate(copy / "unet" / "diffusion_pytorch_model.safetensors")
        a[name] = str(copy)

    bad_json = root / "ckpt-corrupt-json"
    shutil.copytree(ckpt, bad_json)
    (bad_json / "coolcolor.json").write_text('{"resolution": 6')
    a["ckpt_corrupt_json"] = str(bad_json)

    a["seq"] = write_gray_sequence(str(root / "seq"), count=4, size=32)
    a["seq_bad_header"] = write_gray_sequence(str(root / "seq-bad-header"), count=4, size=32)
    (root / "seq-bad-header" / "gray.0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    a["seq_truncated"] = write_gray_sequence(str(root / "seq-truncated"), count=4, size=32)
    _truncate(root / "seq-truncated" / "gray.0002.png")  # the header reads, the pixels do not

    clip = root / "clip"
    assert cli.main(["world", "render", "--frames", "3", "--size", "32x24", str(clip)]) == 0
    a["clip"] = str(clip)
    pred = root / "pred-bad"
    shutil.copytree(clip / "color", pred)
    (pred / "color.0002.png").write_bytes(b"garbage")
    a["pred_bad_frame"] = str(pred)
    cv2.setNumThreads(1)
    return a


class Workspace:
    """One row's folder and fillers for the placeholders of ``argv``.

    ``{tmp}`` the row's folder; ``{out}`` a path in it (not created); ``{missing}`` a path that never
    exists; ``{a_file}`` a regular file; ``{a_dir}`` an empty folder; ``{bad_json}`` a broken JSON file;
    ``{no_daemon}`` a connection file that does not exist; ``{dead_daemon}`` one whose daemon is gone
    (its pid and host recorded); ``{other_host_daemon}`` one of a daemon on another host that does not answer;
    ``{daemon}`` the connection file of a live daemon (tiny model, started on first use); the rest are
    ``assets``.
    """

    def __init__(self, tmp: Path, assets: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                 daemon: Callable[[], str]) -> None:
        from coolcolor_protocol import SIGNATURE_SCHEME

        self.tmp, self.monkeypatch, self._daemon = tmp, monkeypatch, daemon
        (tmp / "a_file.txt").write_text("not what the command wants")
        (tmp / "a_dir").mkdir()
        (tmp / "bad.json").write_text('{"steps": 10,')
        exited = subprocess.Popen([sys.executable, "-c", "pass"])
        exited.wait()  # reaped: a pid with no process
        dead = {"transport": "tcp", "ip": "127.0.0.1", "port": _free_port(), "key": "0" * 64,
                "signature_scheme": SIGNATURE_SCHEME, "session": "gone", "pid": exited.pid, "protocol_version": 1}
        (tmp / "dead.json").write_text(json.dumps(dict(dead, host=socket.gethostname())))
        (tmp / "other-host.json").write_text(json.dumps(dict(dead, host="render-node-that-is-not-this-one")))
        self.values = {
            **assets, "tmp": str(tmp), "out": str(tmp / "out"), "missing": str(tmp / "missing"),
            "a_file": str(tmp / "a_file.txt"), "a_dir": str(tmp / "a_dir"), "bad_json": str(tmp / "bad.json"),
            "no_daemon": str(tmp / "no-daemon.json"), "dead_daemon": str(tmp / "dead.json"),
            "other_host_daemon": str(tmp / "other-host.json"),
        }

    def fill(self, text: str) -> str:
        if "{daemon}" in text:
            self.values["daemon"] = self._daemon()
        if "{busy_port}" in text and "busy_port" not in self.values:
            import socket

            self.busy = socket.socket()  # held until the row's end (closed with the Workspace)
            self.busy.bind(("127.0.0.1", 0))
            self.busy.listen()
            self.values["busy_port"] = str(self.busy.getsockname()[1])
        return text.format(**self.values)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory):
    """A real daemon on the tiny model, started the first time a row needs one."""
    from coolcolor.daemon.testing import DaemonProcess

    started: list[DaemonProcess] = []

    def connection_file() -> str:
        if not started:
            started.append(DaemonProcess(str(tmp_path_factory.mktemp("cli-daemon"))).start(timeout=240))
        return started[0].connection_file

    yield connection_file
    for d in started:
        d.stop()


@pytest.fixture
def ws(tmp_path, assets, monkeypatch, live_daemon):
    workspace = Workspace(tmp_path, assets, monkeypatch, live_daemon)
    yield workspace
    if hasattr(workspace, "busy"):
        workspace.busy.close()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _check_rules(case: Case, code: int, err: str) -> str:
    """The common rules; returns the error line."""
    assert "Traceback" not in err, err
    assert code == case.exit_code, f"exit {code}, expected {case.exit_code}; stderr:\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    problems = [line for line in lines if re.search(r": (internal )?error: ", line)]
    if not case.progress:
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert len(problems) == 1, f"expected one error line, got {len(problems)}:\n{err}"
    line = problems[0]
    assert "internal error" not in line, f"a bug reached the user: {line}"
    prefix = "coolcolor " + case.command + ": error: "
    assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    return line


def _ids(cases: list[Case]) -> list[str]:
    return [f"{c.command}: {c.problem}" for c in cases]


assert len(set(_ids(CASES))) == len(CASES), "two rows with the same name"
assert set(SUBPROCESS_ROWS) <= set(_ids(CASES))


def _run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def _run_as_process(argv: list[str]) -> tuple[int, str]:
    from coolcolor.daemon.testing import child_env

    out = subprocess.run([sys.executable, "-m", "coolcolor.cli", *argv], env=child_env(), capture_output=True,
                         text=True, timeout=240, check=False)
    return out.returncode, out.stderr


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_cli_case(case: Case, ws: Workspace, capsys) -> None:
    if case.setup:
        case.setup(ws)
    argv = [ws.fill(a) for a in case.argv]
    before = _snapshot(ws.tmp)
    code, err = _run_as_process(argv) if case.process else _run_in_process(argv, capsys)
    line = _check_rules(case, code, err)
    assert re.search(case.message, line), f"{line!r} does not name the problem ({case.message!r})"
    if os.environ.get("CLI_SURFACE_TABLE"):  # a Markdown table of the rows and their messages, for the docs
        with open(os.environ["CLI_SURFACE_TABLE"], "a", encoding="utf-8") as table:
            table.write(f"| {case.command} | {case.problem} | {code} | `{line.replace(str(ws.tmp), '…')}` |\n")
    after = _snapshot(ws.tmp)
    for name, data in before.items():
        assert name in after, f"{name} was lost"
        assert after[name] == data or name.endswith("manifest.json"), f"{name} was changed"
    if case.check:
        ws.monkeypatch.undo()
        case.check(ws)


@pytest.mark.parametrize("row", SUBPROCESS_ROWS)
def test_cli_case_in_a_real_process(row: str, ws: Workspace) -> None:
    case = CASES[_ids(CASES).index(row)]
    assert not case.process and not case.setup, "a row that runs as a process anyway, or needs an in-process fault"
    code, err = _run_as_process([ws.fill(a) for a in case.argv])
    line = _check_rules(case, code, err)
    assert re.search(case.message, line), line


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(ws, monkeypatch, capsys):
    """A bug is not dressed up as bad input: one line that says so, and --debug brings the traceback."""
    import coolcolor.world.cli as world_cli

    def broken(*a, **k):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(world_cli, "render_clip", broken)
    argv = ["world", "render", str(ws.tmp / "o")]
    assert cli.main(argv) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("coolcolor world render: internal error: ZeroDivisionError: float division by zero")
    assert "--debug" in err and "COOLCOLOR_DEBUG=1" in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", *argv])
    with pytest.raises(ZeroDivisionError):
        cli.main([*argv, "--debug"])
    monkeypatch.setenv("COOLCOLOR_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(argv)


def test_a_run_stopped_by_a_full_disk_resumes_without_redoing_its_frames(ws, capsys):
    """After ENOSPC the frames already on disk stay valid; the same command, with space again, finishes
    the job and writes only the frames that were missing."""
    full_disk_after(3)(ws)
    argv = [ws.fill(a) for a in COLORIZE]
    assert cli.main(argv) == 1
    ws.monkeypatch.undo()
    kept = {p.name: p.read_bytes() for p in Path(ws.fill("{out}")).glob("ab.*.exr")}
    assert sorted(kept) == ["ab.0001.exr", "ab.0002.exr"]
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "2 frame(s) written, 2 already done, 0 failed" in capsys.readouterr().out
    for name, data in kept.items():
        assert (Path(ws.fill("{out}")) / name).read_bytes() == data
