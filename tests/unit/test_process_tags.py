"""How the wrapper finds and stops its processes (psutil, Linux and macOS), without emulators.

The pure part runs over fake processes. The rest runs the wrapper's own code in a child
Python (so this test process is never made a subreaper nor given a SIGTERM handler),
over sleeping processes that stand for the suite's parts: a part in its own session, an
orphan it leaves behind (as the Firebase CLI leaves its functions workers), and on Linux
an orphan that dropped the tag, found only because the wrapper is its subreaper.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from devtools import suite

ROOT = Path(__file__).resolve().parents[2]
LINUX = sys.platform.startswith("linux")
SLEEPER = "import time; time.sleep(120)"


class FakeProcess:
    def __init__(self, pid, environ=None, error=None, status=psutil.STATUS_SLEEPING):
        self.pid, self._environ, self._error, self._status = pid, environ or {}, error, status

    def environ(self):
        if self._error:
            raise self._error
        return self._environ

    def is_running(self):
        return True

    def status(self):
        return self._status


def test_only_live_processes_carrying_this_tag_are_the_suites():
    tag = "t1"
    procs = [
        FakeProcess(101, {suite.TAG_VAR: tag, "PATH": "/bin"}),
        FakeProcess(102, {suite.TAG_VAR: "another-suite"}),
        FakeProcess(103, {"PATH": "/bin"}),
        FakeProcess(104, error=psutil.AccessDenied(104)),  # another user's
        FakeProcess(105, error=psutil.NoSuchProcess(105)),  # gone meanwhile
        FakeProcess(106, error=psutil.ZombieProcess(106)),
        FakeProcess(107, {suite.TAG_VAR: tag}, status=psutil.STATUS_ZOMBIE),  # dead, waiting to be reaped
        FakeProcess(os.getpid(), {suite.TAG_VAR: tag}),  # the wrapper itself
        FakeProcess(108, {suite.TAG_VAR: tag + "x"}),
    ]
    assert [p.pid for p in suite.tagged_processes(tag, procs)] == [101]
    assert suite.is_tagged({suite.TAG_VAR: tag}, tag) and not suite.is_tagged({}, tag)


def python(code: str, **kwargs) -> subprocess.Popen:
    env = kwargs.pop("env", None) or dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def gone(pid: int) -> bool:
    try:
        return not suite.alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


def cleanup(pids) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


# Spawns, from `sys.argv[1]`'s tagged environment, a grandchild in its own session and exits:
# the grandchild is orphaned, as the CLI's workers are. Prints the grandchild's pid.
ORPHAN_MAKER = (
    "import subprocess, sys;"
    f"p = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}], start_new_session=True, stdin=subprocess.DEVNULL,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "print(p.pid, flush=True)"
)


@pytest.mark.parametrize("subreaper", [LINUX, False], ids=["as-on-this-platform", "without-subreaper-as-on-macos"])
def test_kill_tagged_ends_parts_and_orphans_and_nothing_else(subreaper):
    tag = uuid.uuid4().hex
    outsider = python(SLEEPER, env={**os.environ, suite.TAG_VAR: "not-" + tag})
    stand_in = f"""
import json, os, subprocess, sys
from devtools import suite
if {subreaper!r}:
    suite.become_subreaper()
tagged = {{**os.environ, suite.TAG_VAR: {tag!r}}}
part = subprocess.Popen([sys.executable, "-c", {SLEEPER!r}], env=tagged, start_new_session=True)
orphan = int(subprocess.run([sys.executable, "-c", {ORPHAN_MAKER!r}], env=tagged, capture_output=True, text=True,
                            check=True).stdout)
dropped = None
if {subreaper!r}:
    untagged = {{k: v for k, v in tagged.items() if k != suite.TAG_VAR}}
    dropped = int(subprocess.run([sys.executable, "-c", {ORPHAN_MAKER!r}], env=untagged, capture_output=True,
                                 text=True, check=True).stdout)
before = suite.tagged_pids({tag!r})
suite.kill_tagged({tag!r})
print(json.dumps({{"part": part.pid, "orphan": orphan, "dropped": dropped, "before": before,
                  "after": suite.tagged_pids({tag!r})}}))
"""
    seen = {}
    stand_in = python(stand_in)
    try:
        out, err = stand_in.communicate(timeout=60)
        assert out.strip(), err
        seen = json.loads(out.strip().splitlines()[-1])
        assert {seen["part"], seen["orphan"]} <= set(seen["before"])
        if subreaper:  # an orphan without the tag is still a descendant of the subreaper
            assert seen["dropped"] in seen["before"]
        assert seen["after"] == []
        for pid in (seen["part"], seen["orphan"], seen["dropped"]):
            if pid is not None:
                assert gone(pid), pid
        assert outsider.poll() is None, "a process of another suite was stopped"
    finally:
        stand_in.kill()
        outsider.kill()
        outsider.wait(10)
        cleanup(pid for key in ("part", "orphan", "dropped") if (pid := seen.get(key)))


# The real `python -m devtools.suite`, with its start replaced by sleepers (no emulators,
# no ports): the same stop, signal handling and final line as the real suite.
FAKE_SUITE = f"""
import os, subprocess, sys, tempfile
from pathlib import Path
from devtools import suite

logs = Path(tempfile.mkdtemp())

def start(self):
    if os.environ["FAKE_SUBREAPER"] == "1":
        suite.become_subreaper()
    env = {{**os.environ, suite.TAG_VAR: self.tag}}
    self.spawn("part", [sys.executable, "-c", {SLEEPER!r}], logs / "part.log", env)
    orphan = subprocess.run([sys.executable, "-c", {ORPHAN_MAKER!r}], env=env, capture_output=True, text=True, check=True)
    print("orphan", orphan.stdout.strip(), flush=True)
    self.parts.append(suite.Part("Sleeping part", "nowhere", None))

suite.Suite.start = start
suite.Suite.client_env = lambda self: {{**os.environ, suite.TAG_VAR: self.tag}}
sys.exit(suite.run(sys.argv[1:]))
"""


def run_fake_suite(*args: str, subreaper: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FAKE_SUBREAPER": "1" if subreaper else "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen([sys.executable, "-c", FAKE_SUITE, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def orphan_of(stdout: str) -> int:
    return int(next(line.split()[1] for line in stdout.splitlines() if line.startswith("orphan ")))


SUBREAPER = pytest.mark.parametrize("subreaper", [LINUX, False], ids=["as-on-this-platform", "without-subreaper"])


@SUBREAPER
def test_exec_stops_its_parts_and_their_orphans_and_says_so(subreaper):
    proc = run_fake_suite("exec", "--", sys.executable, "-c", "import sys; sys.exit(7)", subreaper=subreaper)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    orphan = orphan_of(out)
    try:
        assert proc.returncode == 7, out + err
        assert "flowsuite is ready" in out
        assert out.rstrip().splitlines()[-1] == "suite: stopped (no process left behind)"
        assert gone(orphan)
    finally:
        cleanup([orphan])


@SUBREAPER
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_start_stops_everything_on_ctrl_c_or_sigterm(sig, subreaper):
    proc = run_fake_suite("start", subreaper=subreaper)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "suite: running; Ctrl-C stops everything" in line or not line:
            break
    orphan = orphan_of("".join(lines))
    try:
        assert "suite: running; Ctrl-C stops everything" in lines[-1], "".join(lines)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert "suite: stopping" in out
        assert out.rstrip().splitlines()[-1] == "suite: stopped (no process left behind)"
        assert "Traceback" not in err, err
        assert gone(orphan)
    finally:
        proc.kill()
        cleanup([orphan])
