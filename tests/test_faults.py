"""The fault-injection points that the crash tests and bench use to kill at events, not after sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from coolcolor import faults
from coolcolor.daemon.testing import child_env
from coolcolor.errors import CoolColorError

# Hits a point five times, printing the hit number before each: what a killed run leaves tells where it died.
HIT_FIVE_TIMES = (
    "import sys\n"
    "from coolcolor import faults\n"
    "for n in range(1, 6):\n"
    "    print(n, flush=True)\n"
    "    faults.hit(sys.argv[1])\n"
    "print('end', flush=True)\n"
)


def run_hits(point: str, fault: str | None, **env: str) -> subprocess.CompletedProcess:
    extra = dict(env, **({faults.ENV: fault} if fault is not None else {}))
    return subprocess.run([sys.executable, "-c", HIT_FIVE_TIMES, point], env=child_env(extra),
                          capture_output=True, text=True, timeout=120)


def test_the_armed_point_kills_the_process_at_its_count_th_hit():
    done = run_hits("mid_write", "mid_write:3")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2", "3"]  # hits 1 and 2 passed, the 3rd never returned
    assert "coolcolor fault: kill at mid_write #3" in done.stderr


def test_other_points_and_an_unset_variable_cost_nothing():
    assert run_hits("mid_step", "mid_write:1").stdout.split() == ["1", "2", "3", "4", "5", "end"]
    unset = run_hits("mid_write", None)
    assert unset.returncode == 0 and unset.stdout.split()[-1] == "end" and unset.stderr == ""


def test_pause_holds_the_thread_until_the_resume_file_exists(tmp_path):
    resume = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", HIT_FIVE_TIMES, "frame_written"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=child_env({faults.ENV: "frame_written:2:pause", faults.RESUME_ENV: str(resume)}))
    assert proc.stderr is not None and proc.stdout is not None
    line = proc.stderr.readline()  # written when the 2nd hit pauses: an event, not a guessed delay
    assert "coolcolor fault: pause at frame_written #2" in line
    assert proc.poll() is None
    resume.touch()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.split() == ["1", "2", "3", "4", "5", "end"]


@pytest.mark.parametrize("value, message", [
    ("mid_write", "'mid_write' is not point:count[:action]"),
    ("mid_wirte:1", "unknown point 'mid_wirte' (known: startup, mid_step"),
    ("mid_write:0", "count '0' of mid_write must be a whole number >= 1"),
    ("mid_write:x", "count 'x' of mid_write must be a whole number >= 1"),
    ("mid_write:1:explode", "unknown action 'explode' of mid_write (known: kill, pause)"),
])
def test_a_bad_fault_spec_is_refused_with_the_entry_named(value, message):
    with pytest.raises(CoolColorError, match="^COOLCOLOR_FAULT: ") as refused:
        faults.parse(value)
    assert message in str(refused.value)


def test_spec_builds_a_checked_value_and_parse_reads_several_points():
    assert faults.parse(faults.spec("startup", 1) + "," + faults.spec("mid_step", 4, "pause")) == {
        "startup": (1, "kill"), "mid_step": (4, "pause")}
    with pytest.raises(CoolColorError):
        faults.spec("nowhere", 1)


def test_the_daemon_reports_a_bad_fault_spec_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "coolcolor.daemon", "serve", "--tiny-model", "--state-dir",
                           str(tmp_path / "s"), "--connection-file", str(tmp_path / "c.json")],
                          env=child_env({faults.ENV: "mid_write:zero"}), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "COOLCOLOR_FAULT: count 'zero' of mid_write must be a whole number >= 1" in done.stderr
    assert os.path.exists(tmp_path / "c.json") is False


ARMED_BY_VALUE = (
    "import sys\n"
    "from coolcolor import faults\n"
    "def hits(value, n):\n"
    "    faults.arm(value)\n"
    "    for i in range(1, n + 1):\n"
    "        print(value or '-', i, flush=True)\n"
    "        faults.hit('window_first_written')\n"
    "hits('', 3)\n"  # disarmed: nothing fires
    "hits('window_first_written:4', 2)\n"
    "hits('window_first_written:4', 1)\n"  # the same value again: its count goes on (3 so far)
    "hits('window_first_written:2', 1)\n"  # another value: counted afresh, 1 of 2
    "hits('window_first_written:2', 2)\n"  # hits 2 and 3: killed at 2
    "print('end', flush=True)\n"
)


def test_a_worker_armed_by_value_counts_its_hits_as_from_the_environment():
    """``faults.arm``: how a Ray worker takes the driver's COOLCOLOR_FAULT, which it did not start with."""
    done = subprocess.run([sys.executable, "-c", ARMED_BY_VALUE], env=child_env({}), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.splitlines()[-1] == "window_first_written:2 1"  # the 2nd hit of the 2nd value never returned
    assert done.stdout.count("window_first_written:4") == 3  # hit 4 of that value was never reached
    assert "coolcolor fault: kill at window_first_written #2" in done.stderr
    with pytest.raises(CoolColorError, match="unknown point 'nowhere'"):
        faults.arm("nowhere:1")
    assert faults.current() == os.environ.get(faults.ENV, "")
