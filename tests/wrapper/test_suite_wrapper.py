"""The emulator wrapper itself: exit codes, a clear line on a taken port, nothing left behind.

These start their own suite, so `make test` runs them outside the integration run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def suite(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.suite", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


LEFTOVER_MARKS = ("functions-framework", "cloud-firestore-emulator", "localstripe", "stripe_standin", "aiosmtpd")


def leftover_workers() -> list[str]:
    """Processes of any suite still running (psutil: Linux and macOS alike)."""
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            line = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if any(mark in line for mark in LEFTOVER_MARKS):
            found.append(f"{proc.pid} {line}")
    return found


def test_exec_runs_the_command_on_the_ready_suite_and_returns_its_code():
    probe = (
        "import os, sys, urllib.request, json;"
        "url=os.environ['FLOWSUITE_FUNCTIONS_URL']+'/ops_send_probe';"
        "req=urllib.request.Request(url, data=b'{\"data\":{}}', headers={'Content-Type':'application/json'});"
        "import urllib.error\n"
        "try: urllib.request.urlopen(req)\n"
        "except urllib.error.HTTPError as e: body=json.loads(e.read()); sys.exit(7 if body['error']['status']=='UNAUTHENTICATED' else 1)"
    )
    result = suite("exec", "--", sys.executable, "-c", probe)
    assert result.returncode == 7, result.stdout[-2000:] + result.stderr[-2000:]
    assert "flowsuite is ready" in result.stdout
    for part in ("Auth emulator", "Firestore emulator", "Functions emulator", "Cloud Tasks emulator",
                 "localstripe", "SMTP sink", "admin@flowsuite.test"):
        assert part in result.stdout
    assert "no process left behind" in result.stdout
    assert leftover_workers() == []


def test_a_taken_port_fails_in_one_clear_line():
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 8420))
        sock.listen()
        result = suite("exec", "--", "true", timeout=60)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["suite: error: port 8420 (localstripe) is already in use: stop what holds it (another suite?) or change the port"]
    assert "Traceback" not in result.stdout + result.stderr


def test_exec_without_a_command_is_a_usage_error():
    result = suite("exec", timeout=30)
    assert result.returncode == 2 and "needs a command" in result.stderr


def test_start_stops_everything_on_ctrl_c_and_on_sigterm():
    """`make dev` twice: stopped by Ctrl-C (SIGINT), then by SIGTERM; nothing left either time."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen([sys.executable, "-m", "devtools.suite", "start"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            seen = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                seen.append(line)
                if not line or "suite: running; Ctrl-C stops everything" in line:
                    break
            assert "suite: running; Ctrl-C stops everything" in seen[-1], "".join(seen)[-3000:]
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 0, out[-3000:]
        assert "suite: stopping" in out
        assert out.rstrip().splitlines()[-1] == "suite: stopped (no process left behind)", out[-3000:]
        assert leftover_workers() == []
