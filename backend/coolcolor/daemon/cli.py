"""``coolcolor serve | submit | status | cancel | jobs`` — the daemon and its command-line clients.

The client commands use the same ``coolcolor_protocol.Client`` as the plugins, so scripts and farm
wrappers see exactly what an artist's plugin sees. Exit codes: 0 success (for ``submit --wait``: the
job is done), 1 error or failed job, 3 cancelled job.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import uuid
from typing import Any

from coolcolor import faults
from coolcolor.cli_types import int_in, one_line, positive_float
from coolcolor.errors import CoolColorError
from coolcolor.job_args import add_job_arguments, job_from_args
from coolcolor.model.prompt_words import ignored_words_warning

EXIT_CANCELLED = 3


def default_state_dir() -> str:
    explicit = os.environ.get("COOLCOLOR_STATE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "coolcolor")


def _connection_file(path: str | None) -> str:
    from coolcolor_protocol import CONNECTION_FILE_ENV, default_connection_file

    return path or os.environ.get(CONNECTION_FILE_ENV) or default_connection_file()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="run the backend daemon that the Resolve and Nuke plugins talk to",
                              description="Run the CoolColor daemon: a ZeroMQ ROUTER on 127.0.0.1, a job "
                              "journal and a worker. Clients find it through the connection file.")
    p.add_argument("--model", help="'default', a training run folder or a CoolColor checkpoint folder "
                   "(default: $COOLCOLOR_MODEL, else the embedded default model coolcolor-tiny)")
    p.add_argument("--port", type=int_in(0, 65535), default=0, help="TCP port (default: any free port, written to the "
                   "connection file)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind; anything but loopback needs CURVE keys")
    p.add_argument("--state-dir", default=None, help="journal folder (default: $COOLCOLOR_STATE_DIR or "
                   "~/.local/state/coolcolor)")
    p.add_argument("--connection-file", default=None, help="where to write the connection file")
    p.add_argument("--root", dest="roots", action="append", default=[], metavar="DIR",
                   help="only accept sources and outputs inside DIR (repeatable)")
    p.add_argument("--device", default=None, help="torch device for the model (cpu, cuda, cuda:1, …; default: "
                   "cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="fp32, fp16 or bf16 (default: fp16 on CUDA, fp32 on CPU)")
    p.add_argument("--curve-secret", metavar="FILE", help="the server's zmq certificate with its secret key")
    p.add_argument("--curve-clients", metavar="DIR", help="folder of authorized clients' public certificates")
    p.add_argument("--ray", metavar="auto|ADDRESS|local:N", default=None,
                   help="farm each job's windows out to a Ray cluster (see the README's Scale-out); the plugins "
                   "still talk to this daemon only; needs pip install 'coolcolor[ray]'")
    p.add_argument("--ray-workers", type=int_in(1), default=None, metavar="N",
                   help="actors in the Ray pool (default: one per GPU of the cluster, else one per CPU)")
    p.add_argument("--max-queued-jobs", type=int_in(1), default=1000, metavar="N",
                   help="refuse a submit while N jobs wait (default 1000)")
    p.add_argument("--debug", action="store_true", help="include exception details in error replies")
    p.add_argument("--tiny-model", action="store_true", help=argparse.SUPPRESS)  # tests: --model preset:tiny
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("submit", help="submit a colorization job to the daemon")
    add_job_arguments(p)  # the job's flags, the same as `coolcolor colorize`'s
    p.add_argument("--key", help="idempotency key (default: a new random key); resubmitting with the same "
                   "key returns the same job, or resumes it if it failed or was cancelled")
    p.add_argument("--wait", action="store_true", help="wait for the job and print progress")
    _client_options(p)
    p.set_defaults(func=cmd_submit)

    p = subparsers.add_parser("status", help="show one job of the daemon")
    p.add_argument("job_id", help="the job's id, as submit printed it (32 hex digits)")
    _client_options(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job_id", help="the job's id, as submit printed it (32 hex digits)")
    p.add_argument("--wait", action="store_true", help="wait until the worker has stopped")
    _client_options(p)
    p.set_defaults(func=cmd_cancel)

    p = subparsers.add_parser("jobs", help="list the daemon's jobs")
    p.add_argument("--state", dest="states", action="append", choices=["queued", "running", "done", "failed",
                                                                       "cancelled"],
                   help="only jobs in this state (repeatable; default: every state)")
    p.add_argument("--limit", type=int_in(1), default=50, help="at most this many jobs, newest first (default 50)")
    _client_options(p)
    p.set_defaults(func=cmd_jobs)


def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connection-file", default=None, help="daemon connection file (default: discovered)")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds to wait for each reply")
    p.add_argument("--json", action="store_true", help="print JSON")


# ------------------------------------------------------------------------------------------------ serve
def cmd_serve(args: argparse.Namespace) -> int:
    from coolcolor.daemon.server import Daemon, DaemonConfig

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s coolcolor-daemon %(levelname)s %(message)s")
    from coolcolor.model.resolve import TINY_PRESET, dtype_name, resolve_device, resolve_model_source

    # The model's name and folder are checked here, without torch (the socket must come up before the
    # slow imports); the worker resolves the same spec again and loads it.
    model = TINY_PRESET if args.tiny_model else (args.model or None)
    name, path = resolve_model_source(model)
    dtype_name(args.dtype)
    if args.device is not None:
        resolve_device(args.device)  # an explicit device that is not there: one line, before anything starts
    for root in args.roots:
        if not os.path.isdir(root):
            raise CoolColorError(f"--root {root} is not a folder")
    state_dir = args.state_dir or default_state_dir()
    if os.path.exists(state_dir) and not os.path.isdir(state_dir):
        raise CoolColorError(f"state folder {state_dir} is a file, not a folder (--state-dir)")
    if bool(args.curve_secret) != bool(args.curve_clients):
        raise CoolColorError("--curve-secret and --curve-clients go together")
    config = DaemonConfig(
        state_dir=state_dir, connection_file=_connection_file(args.connection_file),
        ip=args.ip, port=args.port, model=model, device=args.device, dtype=args.dtype,
        roots=[os.path.abspath(r) for r in args.roots], curve_secret_file=args.curve_secret,
        curve_clients_dir=args.curve_clients, max_queued_jobs=args.max_queued_jobs, debug=args.debug,
    )
    executor = None  # None: the daemon makes a LocalExecutor for config.model once its socket is up
    if args.ray:
        from coolcolor.daemon.ray_executor import RayJobExecutor

        executor = RayJobExecutor(args.ray, model, args.device, args.dtype, workers=args.ray_workers)
    daemon = Daemon(config, executor)

    def on_signal(signum: int, frame: Any) -> None:
        daemon.request_stop()

    signal.signal(signal.SIGTERM, on_signal)  # before the connection file exists: no window without it
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    faults.hit("startup")
    print(f"coolcolor daemon listening on {config.ip}:{daemon.port}; connection file {config.connection_file}; "
          f"model {name} ({path or 'built in code'})", flush=True)
    while not daemon.stopping:
        time.sleep(0.1)
    daemon.shutdown()
    # Everything is on disk and the connection file is gone; skip the interpreter's teardown (seconds
    # with torch loaded, or a model still loading in the worker thread).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ------------------------------------------------------------------------------------------------ clients
def _client(args: argparse.Namespace) -> Any:
    from coolcolor_protocol import Client, ProtocolError

    try:
        return Client(args.connection_file, name="coolcolor-cli", timeout=args.timeout)
    except ProtocolError as exc:
        raise CoolColorError(exc.message) from None


def _call(fn: Any, *a: Any, **kw: Any) -> Any:
    from coolcolor_protocol import ProtocolError

    try:
        return fn(*a, **kw)
    except ProtocolError as exc:
        raise CoolColorError(f"{exc.message} (code {exc.code})") from None


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(job, indent=2, sort_keys=True))
        return
    total = job.get("frames_total")
    line = f"{job['job_id']}  {job['state']:<9}  {job.get('frames_done', 0)}/{total if total is not None else '?'} frames"
    if job.get("queue_position"):
        line += f"  queue #{job['queue_position']}"
    if job.get("cached"):
        line += "  (from cache)"
    print(line + f"  {job.get('source')} -> {job.get('output_dir')}")
    if job.get("error"):
        print(f"  error {job['error']['code']}: {job['error']['message']}")


def cmd_submit(args: argparse.Namespace) -> int:
    from coolcolor_protocol import ProtocolError

    spec = job_from_args(args, absolute_paths=True)  # the daemon may run in another folder
    try:
        spec.validate()  # a bad flag is reported here, before the daemon is asked
    except ProtocolError as exc:
        raise CoolColorError(exc.message) from None
    job = spec.to_dict()
    with _client(args) as client:
        reply = _call(client.submit, job, args.key or uuid.uuid4().hex, subscribe=args.wait)
        if not args.json:  # --json carries the same in the reply's unknown_words
            warning = ignored_words_warning(spec.prompt, list(reply.get("unknown_words") or []))
            if warning:
                print(f"coolcolor submit: warning: {one_line(warning)}", file=sys.stderr)
        if not args.wait:
            _print_job(reply, args.json)
            return 0
        if not args.json:
            print(f"job {reply['job_id']} {reply['state']}" + (" (already submitted)" if reply["duplicate"] else ""),
                  file=sys.stderr)

        def on_event(msg: Any) -> None:
            if args.json:
                return
            c = msg.content
            if msg.type == "progress" and c.get("state") == "running":
                eta = f", ETA {c['eta_s']:.0f} s" if c.get("eta_s") is not None else ""
                print(f"\r{c['frames_done']}/{c['frames_total']} frames, step {c['step']}/{c['steps_total']}{eta}   ",
                      end="", file=sys.stderr, flush=True)
            elif msg.type == "error":
                print(f"\nerror {c.get('code')}: {c.get('message')}", file=sys.stderr)

        final = _call(client.wait, reply["job_id"], on_event=on_event)
        if not args.json:
            print(file=sys.stderr)
        _print_job(final, args.json)
        return {"done": 0, "cancelled": EXIT_CANCELLED}.get(final["state"], 1)


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_job(_call(client.status, args.job_id), args.json)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = _call(client.cancel, args.job_id)
        if args.wait and reply["state"] != "cancelled":
            reply = _call(client.wait, args.job_id)
        print(json.dumps(reply) if args.json else f"{args.job_id} {reply['state']}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = _call(client.list_jobs, args.states, args.limit)
    if args.json:
        print(json.dumps(jobs, indent=2, sort_keys=True))
    elif not jobs:
        print("no jobs")
    for job in [] if args.json else jobs:
        _print_job(job, False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m coolcolor.daemon``: these commands without the rest of the coolcolor CLI."""
    from coolcolor.cli import main as coolcolor_main

    return coolcolor_main(argv, modules=(__name__,), prog="python -m coolcolor.daemon")
