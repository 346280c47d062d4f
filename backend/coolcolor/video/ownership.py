"""Who may write an output folder: one job at a time (protocol/SPEC.md, "Output folder ownership").

Every writer of an output folder — ``run_job`` (``coolcolor colorize``, both daemon executors, the Ray
driver, ``farm finish``), the daemon's cache copy and the farm's export and ``run-window`` tasks — takes
the folder here first; Ray workers write on behalf of their driver and check that it still holds it.

The mechanism must hold on NFS and SMB, across machines, so it uses no ``fcntl``/``flock`` lock (not
reliable on every network file system) but the one operation those make atomic: creating a name that
does not exist. The owner file ``.coolcolor-owner.json`` is written complete to a temporary name and
then ``link()``-ed to its name (``O_CREAT|O_EXCL`` where the file system has no hard links); whoever
creates it owns the folder. It records the job key, what the job is (prompt, source), the host, the
pid (with the pid's start time, so a reused pid is not taken for the holder, and its pid namespace, so a
container that shares the host's name is not judged by pids it cannot see) and when it started.

- A writer of a **different** job is refused at once (``FolderBusy``, one line naming the folder, the
  other job and what to do).
- A writer of the **same** job waits until the holder is done (``JobEvents.waiting`` says so), then
  takes the folder and finds the holder's frames finished: a frame is never computed twice.
- A **dead** holder's file is taken over: on this host when its pid is gone (kill -9, a crash, a
  reboot); for a holder on another host when the file's modification time — touched every
  ``HEARTBEAT_S`` by a live holder — is older than ``STALE_AFTER_S`` (clocks of the machines must agree
  to well within that; NFS's attribute cache, 60 s at most by default, is inside it). A takeover moves
  the stale file aside under a unique name and checks it moved the file it judged, so two processes
  that find the same stale file cannot both take the folder.
- A farm job (``coolcolor farm export-openjd``) *reserves* the folder for its tasks: the reservation
  names the plan, every ``run-window`` task of that plan writes its own windows under it (the windows
  of a plan never overlap), and ``farm finish`` ends it. A reservation has no process to watch: it stays
  until ``farm finish`` or until someone deletes the owner file of an abandoned farm job.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from coolcolor.errors import CoolColorError, InputError

OWNER_FILE = ".coolcolor-owner.json"
OWNER_FORMAT = "coolcolor-folder-owner"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 180.0
WAIT_POLL_S = 0.25
HOST = socket.gethostname()


class FolderBusy(InputError):
    """The output folder is being written by another job (one line: folder, that job, what to do)."""


class OwnershipLost(CoolColorError):
    """This job's owner file was taken over (judged stale): it stops writing to the folder."""


def owner_path(output_dir: str) -> str:
    return os.path.join(output_dir, OWNER_FILE)


def read_owner(output_dir: str) -> dict[str, Any] | None:
    """The folder's owner record, or None when there is none (or it cannot be read as one)."""
    return _read(owner_path(output_dir))


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == OWNER_FORMAT else None


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux ``/proc``), so a pid reused by another process is not mistaken for
    the holder; None where it cannot be read (then the pid alone decides)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]  # a zombie is dead: it only waits to be reaped


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux): a container sharing the host's name (``--network host``) has
    pids of its own, so a holder there is judged like one on another host, by its heartbeat."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


PID_NAMESPACE = _pid_namespace()


def _pid_alive(pid: int, start: str | None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive (its /proc entry may be hidden from us)
        return True
    except OSError:  # pragma: no cover
        return True
    now = _process_start(pid)
    if now is None:
        return not os.path.isdir("/proc/self")  # on Linux: a zombie, or gone between the two looks
    return start is None or now == start


def holder_alive(owner: dict[str, Any], mtime: float, now: float | None = None) -> bool:
    """Whether the holder recorded in ``owner`` (file modified at ``mtime``) may still be writing."""
    if owner.get("farm_plan"):
        return True  # a farm reservation: ended by `farm finish` (or by deleting the file)
    if owner.get("host") == HOST and owner.get("pid_namespace") == PID_NAMESPACE:
        try:
            pid = int(owner.get("pid") or 0)
        except (TypeError, ValueError):
            pid = 0
        return _pid_alive(pid, owner.get("pid_start"))
    return (time.time() if now is None else now) - mtime < STALE_AFTER_S


def describe_job(job: Any) -> dict[str, Any]:
    """What a person needs to recognise a job in the owner file and in the refusal."""
    return {"prompt": job.prompt, "source": os.path.abspath(job.source), "output_dir": os.path.abspath(job.output_dir)}


def _when(epoch: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))
    except (TypeError, ValueError, OverflowError):
        return "an unknown time"


def _who(owner: dict[str, Any]) -> str:
    job = owner.get("job") or {}
    what = f"prompt {job.get('prompt', '')!r}, source {job.get('source', '?')}"
    if owner.get("farm_plan"):
        return f"the farm job of plan {owner['farm_plan']} ({what}, exported on {owner.get('host')} at {_when(owner.get('started'))})"
    return f"{what}, pid {owner.get('pid')} on {owner.get('host')}, since {_when(owner.get('started'))}"


def _busy_message(output_dir: str, owner: dict[str, Any]) -> str:
    return (f"output folder {output_dir} is being written by another job ({_who(owner)}); wait for it to finish "
            f"or use another output folder (if that job is dead, delete {owner_path(output_dir)})")


class FolderOwnership:
    """One job's hold on one output folder: ``acquire``, write, ``release`` (or ``with``)."""

    def __init__(self, output_dir: str, job_key: str, job: dict[str, Any], farm_plan: str | None = None) -> None:
        self.output_dir = output_dir
        self.path = owner_path(output_dir)
        self.job_key, self.job, self.farm_plan = job_key, job, farm_plan
        self.token = secrets.token_hex(8)
        self.lost: str | None = None
        self.took_over: dict[str, Any] | None = None  # the dead holder this one replaced, if any
        self._held = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------------ the record
    def _record(self) -> dict[str, Any]:
        return {"format": OWNER_FORMAT, "version": 1, "job_key": self.job_key, "job": self.job, "host": HOST,
                "pid": os.getpid(), "pid_start": _process_start(os.getpid()), "pid_namespace": PID_NAMESPACE,
                "started": time.time(),
                "token": self.token, "farm_plan": self.farm_plan}

    def _temporary(self) -> str:
        tmp = f"{self.path}.{self.token}.{secrets.token_hex(4)}.tmp"
        data = json.dumps(self._record(), indent=1).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # readable by whoever may read results
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _create(self) -> bool:
        """Create the owner file, complete, in one atomic step; False if it exists."""
        tmp = self._temporary()
        try:
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                with contextlib.suppress(OSError):  # NFS may report a link that did happen as failed
                    if os.stat(tmp).st_nlink == 2:
                        return True
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                    raise
            try:  # a file system without hard links (some SMB shares): O_EXCL, then the content
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with open(tmp, "rb") as src:
                os.write(fd, src.read())
            os.fsync(fd)
            os.close(fd)
            return True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _look(self) -> tuple[dict[str, Any] | None, float] | None:
        """(the owner record or None if unreadable, its mtime), or None when there is no owner file."""
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            return None
        return _read(self.path), mtime

    def _break(self, seen: dict[str, Any] | None) -> bool:
        """Remove the stale owner file ``seen`` — and only it: it is renamed aside under a unique name and
        checked; a fresh file renamed by mistake (someone took over first) is put back."""
        aside = f"{self.path}.{self.token}.stale"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        moved = _read(aside)
        if (moved or {}).get("token") != (seen or {}).get("token"):
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                os.unlink(aside)
            return False
        os.unlink(aside)
        return True

    # ------------------------------------------------------------------ taking and giving back
    def acquire(self, waiting: Callable[[str], None] | None = None, check: Callable[[], None] | None = None,
                shared_farm: bool = False) -> None:
        """Take the folder, or raise ``FolderBusy`` if another job holds it. The same job's live holder is
        waited for (``waiting(message)`` once, ``check()`` between looks — it may raise to stop waiting).
        ``shared_farm``: a farm task, which writes under its plan's reservation (making it if missing)."""
        os.makedirs(self.output_dir, exist_ok=True)
        announced = False
        while True:
            if self._create():
                self._held = True
                if not self.farm_plan:
                    self._heartbeat = threading.Thread(target=self._beat, name="coolcolor-owner", daemon=True)
                    self._heartbeat.start()
                return
            look = self._look()
            if look is None:
                continue  # released between the two steps
            owner, mtime = look
            if owner is None:  # being written this instant, or not ours and unreadable
                if time.time() - mtime < STALE_AFTER_S:
                    self._pause(check)
                    continue
            elif holder_alive(owner, mtime):
                if owner.get("job_key") != self.job_key:
                    raise FolderBusy(_busy_message(self.output_dir, owner))
                if shared_farm and owner.get("farm_plan"):
                    return  # a task of the farm job that reserved the folder (same job key)
                if not announced and waiting is not None:
                    waiting(f"output folder {self.output_dir} is being written by the same job ({_who(owner)}); "
                            "waiting for it to finish — its frames are kept, not computed again")
                announced = True
                self._pause(check)
                continue
            if self._break(owner):
                self.took_over = owner

    @staticmethod
    def _pause(check: Callable[[], None] | None) -> None:
        if check is not None:
            check()
        time.sleep(WAIT_POLL_S)

    def _beat(self) -> None:
        """Touch the owner file every ``HEARTBEAT_S`` (other hosts judge liveness by its age); notice a
        takeover (the file no longer ours) and stop: ``check`` then raises ``OwnershipLost``."""
        while not self._stop.wait(HEARTBEAT_S):
            if (_read(self.path) or {}).get("token") != self.token:
                self.lost = (f"output folder {self.output_dir} was taken over by another process (this job's owner "
                             "file was judged stale); stopped writing to it")
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> None:
        if self.lost:
            raise OwnershipLost(self.lost)

    def reserve_for_farm(self, plan_path: str) -> None:
        """Turn this hold into the farm reservation of ``plan_path`` (export-openjd), which outlives us."""
        self._stop_heartbeat()
        self.farm_plan = plan_path
        tmp = self._temporary()
        os.replace(tmp, self.path)  # ours: replaced in place, never absent
        self._held = False

    def release(self) -> None:
        """Give the folder back (only if the owner file is still ours)."""
        self._stop_heartbeat()
        if self._held and (_read(self.path) or {}).get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._held = False

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None

    def __enter__(self) -> FolderOwnership:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def refuse_if_another_job_holds(output_dir: str, job: dict[str, Any]) -> None:
    """Before the model is loaded (the job key needs its hash): a live holder with another prompt — part
    of the key as written — is certainly another job, so say so now. Not the source path: the key knows
    footage by its identity, not where it is mounted. Anything closer is decided by ``acquire``."""
    path = owner_path(output_dir)
    owner = _read(path)
    if owner is None or (owner.get("job") or {}).get("prompt") == job.get("prompt"):
        return
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return
    if holder_alive(owner, mtime):
        raise FolderBusy(_busy_message(output_dir, owner))


def end_farm_reservation(output_dir: str, job_key: str, plan_path: str) -> None:
    """``farm finish``: the farm job's tasks are done; its reservation ends (if it is still its)."""
    owner = read_owner(output_dir)
    if owner and owner.get("job_key") == job_key and owner.get("farm_plan") == plan_path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(owner_path(output_dir))


def require_owner(output_dir: str, job_key: str, where: str) -> None:
    """A Ray worker writes on behalf of its driver: only while the folder is still that job's."""
    owner = read_owner(output_dir)
    if owner is None or owner.get("job_key") != job_key:
        who = "no job" if owner is None else f"another job ({_who(owner)})"
        raise OwnershipLost(f"output folder {output_dir} is held by {who}, not by this job's driver; {where} "
                            "writes nothing there")
