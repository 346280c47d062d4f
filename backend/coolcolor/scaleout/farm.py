"""Render-farm export: a planned job as an Open Job Description template (Deadline Cloud, OpenJD farms).

    coolcolor farm export-openjd INPUT -o OUT --template job.yaml [colorize options…]
    coolcolor farm run-window PLAN.json --window KEYFRAME:FIRST-LAST      (what each farm task runs)
    coolcolor farm finish PLAN.json                                         (the last step: manifest)

The farm is the third way the windows of a planned job are run, beside the two segment runners of
``coolcolor.video.run`` (``LocalSegmentRunner`` in this process, ``RaySegmentRunner`` on a Ray pool).
It is not a ``SegmentRunner`` itself: no process of ours waits for the windows — the farm's scheduler
runs them, and the manifest is written by the template's last step.

The job is planned here, once, exactly as ``coolcolor colorize`` plans it (shots, keyframes, windows).
The template has one step per shot, one task per window (a STRING task parameter ``Window``), and a
last step that depends on every shot and writes the manifest. Each task calls ``run-window``, which
runs the engine's own ``colorize_segment`` on that window and writes its ab files atomically into the
output folder; a task re-run skips frames already written by this job. The plan (``PLAN.json``:
the job, its key, the model and its hash, and the driver's segment context — keyframes, shot bounds,
checked references, the prompt's ignored words) lies next to the template, on shared storage, so
every farm node reads the same one and colorizes a window as a local run would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from coolcolor.errors import InputError
from coolcolor.model.resolve import resolve_model

PLAN_FORMAT = "coolcolor-farm-plan"


def register(subparsers: argparse._SubParsersAction) -> None:
    from coolcolor.job_args import add_job_arguments

    farm = subparsers.add_parser("farm", help="export a job to a render farm (Open Job Description)")
    sub = farm.add_subparsers(dest="farm_command", metavar="FARM_COMMAND")
    export = sub.add_parser("export-openjd", help="plan a job and write an OpenJD job template")
    add_job_arguments(export)  # the same job flags as colorize and submit
    export.add_argument("--model", metavar="PATH", help="the checkpoint every farm node loads (same path everywhere)")
    export.add_argument("--device", default=None, help="torch device on the farm nodes (default: cuda if "
                        "available, else cpu)")
    export.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 on the farm nodes (default: fp16 on CUDA, "
                        "fp32 on CPU)")
    export.add_argument("--template", required=True, metavar="YAML", help="the OpenJD template to write")
    export.add_argument("--coolcolor", default="coolcolor", metavar="COMMAND",
                        help="the command farm nodes run (default: coolcolor on their PATH)")
    export.set_defaults(func=export_openjd)
    window = sub.add_parser("run-window", help="(a farm task) colorize one window of an exported plan")
    window.add_argument("plan", metavar="PLAN.json", help="the plan export-openjd wrote beside the template")
    window.add_argument("--window", required=True, metavar="KEYFRAME:FIRST-LAST",
                        help="the window to colorize and its keyframe, e.g. 1001:1001-1008")
    window.add_argument("--device", default=None, help="torch device (default: the plan's, else cuda if available, "
                        "else cpu)")
    window.set_defaults(func=run_window)
    finish = sub.add_parser("finish", help="(the last farm step) check every frame and write the manifest")
    finish.add_argument("plan", metavar="PLAN.json", help="the plan export-openjd wrote beside the template")
    finish.add_argument("--device", default=None, help="torch device (default: the plan's, else cuda if available, "
                        "else cpu)")
    finish.set_defaults(func=finish_plan)
    farm.set_defaults(func=lambda args: (farm.print_help(), 2)[1])


def _window_value(keyframe: int, frames: tuple[int, ...]) -> str:
    return f"{keyframe}:{frames[0]}-{frames[-1]}"


def _parse_window(text: str) -> tuple[int, list[int]]:
    try:
        key, _, span = text.partition(":")
        first, _, last = span.partition("-")
        keyframe, lo, hi = int(key), int(first), int(last or first)
    except ValueError:
        raise InputError(f"--window {text!r}: expected KEYFRAME:FIRST-LAST, e.g. 1001:1001-1008") from None
    if lo > hi:
        raise InputError(f"--window {text!r}: first frame after last")
    return keyframe, list(range(lo, hi + 1))


def openjd_template(name: str, plan_path: str, shots: list[tuple[str, list[str]]], coolcolor: str) -> dict[str, Any]:
    """The template as a dict (jobtemplate-2023-09): a step per shot, a task per window, then finish."""
    steps: list[dict[str, Any]] = []
    for step_name, windows in shots:
        steps.append({
            "name": step_name,
            "parameterSpace": {"taskParameterDefinitions": [{"name": "Window", "type": "STRING", "range": windows}]},
            "script": {"actions": {"onRun": {
                "command": coolcolor,
                "args": ["farm", "run-window", plan_path, "--window", "{{Task.Param.Window}}"],
            }}},
        })
    steps.append({
        "name": "manifest",
        "dependencies": [{"dependsOn": s["name"]} for s in steps],
        "script": {"actions": {"onRun": {"command": coolcolor, "args": ["farm", "finish", plan_path]}}},
    })
    return {"specificationVersion": "jobtemplate-2023-09", "name": name[:128], "steps": steps}


def export_openjd(args: argparse.Namespace) -> int:
    import yaml

    from coolcolor.job_args import job_from_args
    from coolcolor.video.job import ColorizeJob, JobEvents, open_job
    from coolcolor.video.plan import plan_job
    from coolcolor.video.run import JobRun, LocalSegmentRunner, unknown_words

    # Every path absolute: OpenJD runs each task in a working folder of its own, where a path relative
    # to the folder of the export names nothing (source, output, OCIO config, CLIP model, model).
    job = job_from_args(args, ColorizeJob, absolute_paths=True)
    template_path = os.path.abspath(args.template)
    plan_path = os.path.splitext(template_path)[0] + ".plan.json"
    with open_job(job) as opened:
        pipeline = resolve_model(args.model, args.device, args.dtype).load_pipeline()
        runner = LocalSegmentRunner(pipeline)
        run = JobRun(opened, JobEvents(), runner.model_hash, runner.resolution, "openjd",
                     unknown_words(runner.prompt_reader, job.prompt))
        ownership = run.take_folder()  # held while planning, then reserved for the farm job until `farm finish`
        try:
            previous = run.prepare()
            plan = plan_job(run, lambda shot: runner.choose_keyframe(run, shot), previous)
            run.write_manifest("running", plan.shots)  # the plan, reused by `finish` (and any re-run)
            context = run.segment_context(plan)
        except BaseException:
            run.release_folder()
            raise
    model = _absolute_model(args.model)
    with open(plan_path, "w", encoding="utf-8") as fh:
        json.dump({"format": PLAN_FORMAT, "job": job.to_dict(), "job_key": run.key, "model": model,
                   "dtype": args.dtype, "model_hash": run.model_hash, "keyframes": plan.keyframes,
                   "shots": [list(shot) for shot in context.shots or []], "unknown_words": context.unknown_words,
                   "references": [r.to_dict() for r in context.checked_references()]}, fh, indent=2)
    shots = []
    for shot in plan.shots:
        windows = [_window_value(w.keyframe, w.frames) for s in plan.segments for w in s.windows(job.window)
                   if shot.first <= w.frames[0] <= shot.last]
        if windows:
            shots.append((f"shot-{shot.first:04d}-{shot.last:04d}", windows))
    command = args.coolcolor  # a relative path to a program: absolute, like the rest
    if os.sep in command and os.path.exists(command):
        command = os.path.abspath(command)
    template = openjd_template(f"CoolColor {os.path.basename(job.source)}", plan_path, shots, command)
    with open(template_path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(template, fh, sort_keys=False)
    ownership.reserve_for_farm(plan_path)  # only now: a failed export leaves no reservation behind
    tasks = sum(len(w) for _, w in shots)
    print(f"{template_path}: {len(shots)} shot step(s), {tasks} window task(s), then the manifest; plan {plan_path}")
    return 0


def _absolute_model(spec: str | None) -> str | None:
    """The model spec a farm node can use from any folder: a checkpoint or run folder (given, or from
    $COOLCOLOR_MODEL) as an absolute path; a name (``default``) as it is."""
    from coolcolor.model.resolve import MODEL_ENV

    spec = spec or os.environ.get(MODEL_ENV) or None
    if spec and os.path.exists(os.path.expanduser(spec)):
        return os.path.abspath(os.path.expanduser(spec))
    return spec


def _load_plan(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            plan = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the farm plan {path}: {exc}") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InputError(f"{path} is not a CoolColor farm plan")
    return plan


def _pipeline_for(plan: dict[str, Any], device: str | None) -> Any:
    pipeline = resolve_model(plan["model"], device, plan.get("dtype")).load_pipeline()
    if pipeline.model_hash != plan["model_hash"]:
        raise InputError(f"the model on this node ({plan['model'] or 'default'}, hash {pipeline.model_hash[:12]}) "
                         f"is not the exported one (hash {plan['model_hash'][:12]}): install the same checkpoint")
    return pipeline


def run_window(args: argparse.Namespace) -> int:
    from coolcolor.video.exr import read_ab_header
    from coolcolor.video.job import ColorizeJob, open_job
    from coolcolor.video.ownership import FolderOwnership, describe_job
    from coolcolor.video.plan import Segment
    from coolcolor.references import CheckedReference
    from coolcolor.video.job import ab_frame_path
    from coolcolor.video.segment import AbFolderSink, SegmentContext, SegmentEvents, colorize_segment

    plan = _load_plan(args.plan)
    keyframe, frames = _parse_window(args.window)
    job = ColorizeJob.from_dict(plan["job"])
    # under the farm job's reservation of the folder (made again if it was removed); another job is refused
    FolderOwnership(job.output_dir, plan["job_key"], describe_job(job), os.path.abspath(args.plan)).acquire(
        lambda message: print(f"coolcolor farm run-window: {message}", file=sys.stderr, flush=True),
        shared_farm=True)
    todo = tuple(f for f in frames
                 if (read_ab_header(ab_frame_path(job.output_dir, f)) or {}).get("job_key") != plan["job_key"])
    if not todo:
        print(f"window {args.window}: already done")
        return 0
    failed: dict[int, str] = {}

    class Report(SegmentEvents):
        def frame_failed(self, frame: int, message: str) -> None:
            failed[frame] = message

    with open_job(job) as opened:
        if opened.key(plan["model_hash"]) != plan["job_key"]:
            raise InputError(f"the source {job.source} on this node is not the exported one (another identity)")
        pipeline = _pipeline_for(plan, args.device)
        from coolcolor.model.pipeline import KeyframeKVCache

        # the driver's context, as a local run's: a plan exported before it carried shots, references and
        # ignored words reads as one shot, the references checked here, none ignored
        references = plan.get("references")
        context = SegmentContext(
            job, plan["job_key"], plan["model_hash"], plan["keyframes"], keyframe_cache=KeyframeKVCache(),
            unknown_words=list(plan.get("unknown_words") or []), decoder=opened.decoder,
            references=None if references is None else [CheckedReference(**r) for r in references],
            shots=[(first, last) for first, last in plan.get("shots") or []] or None)
        colorize_segment(pipeline, Segment(keyframe, todo), opened.read_gray, AbFolderSink(job), Report(), context)
    for frame, message in sorted(failed.items()):
        print(f"frame {frame}: {message}")
    print(f"window {args.window}: {len(todo) - len(failed)} frame(s) written, {len(failed)} failed")
    return 1 if failed else 0


def finish_plan(args: argparse.Namespace) -> int:
    from coolcolor.video.job import ColorizeJob
    from coolcolor.video.run import run_colorize_job

    from coolcolor.video.ownership import end_farm_reservation

    plan = _load_plan(args.plan)
    job = ColorizeJob.from_dict(plan["job"])
    pipeline = _pipeline_for(plan, args.device)
    end_farm_reservation(job.output_dir, plan["job_key"], os.path.abspath(args.plan))  # the tasks are done
    result = run_colorize_job(job, pipeline)  # every frame done: only the manifest (under a hold of its own)
    print(f"{len(result.frames_skipped)} frame(s) done by the farm, {len(result.frames_written)} written now, "
          f"{len(result.frames_failed)} failed; manifest: {result.manifest_path}")
    return 0 if result.ok else 1
