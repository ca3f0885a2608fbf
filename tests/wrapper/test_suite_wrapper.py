"""The emulator wrapper itself: exit codes, a clear line on a taken port, nothing left behind.

These start their own suite, so `make test` runs them outside the integration run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def suite(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.suite", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def leftover_workers() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if ("functions-framework" in line or "cloud-firestore-emulator" in line or "localstripe" in line or "stripe_standin" in line
                or "aiosmtpd" in line) and "ps -eo" not in line]


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
