"""Setup's stamps (devtools/stamp.py): the hash that decides whether a setup step runs again."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.stamp import stamp_of

ROOT = Path(__file__).resolve().parents[2]


def test_a_stamp_is_sha256_of_the_files_read_one_after_another(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"pytest==9.2.0\n")
    b.write_bytes(b"\x00binary\xff" * 50_000)  # more than one read chunk
    expected = hashlib.sha256(a.read_bytes() + b.read_bytes()).hexdigest()[:16]
    assert stamp_of([a, b]) == expected
    assert len(stamp_of([a])) == 16


def test_a_stamp_changes_with_content_and_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("one\n")
    b.write_text("two\n")
    first = stamp_of([a, b])
    assert stamp_of([b, a]) != first
    b.write_text("two!\n")
    assert stamp_of([a, b]) != first


def test_the_stamp_matches_what_sha256sum_printed_before(tmp_path):
    """Stamps written by the old `cat FILES | sha256sum | cut -c1-16` stay valid (no rebuild on upgrade)."""
    tool = shutil.which("sha256sum") or shutil.which("shasum")
    if tool is None:
        pytest.skip("neither sha256sum nor shasum here")
    a, b = tmp_path / "requirements.txt", tmp_path / "package-lock.json"
    a.write_text("firebase-functions==0.4.3\n")
    b.write_text('{"lockfileVersion": 3}\n')
    algorithm = ["-a", "256"] if tool.endswith("shasum") else []
    old = subprocess.run([tool, *algorithm], input=a.read_bytes() + b.read_bytes(), capture_output=True, check=True)
    assert stamp_of([a, b]) == old.stdout.decode()[:16]


def test_the_command_line_prints_the_stamp_and_names_a_missing_file(tmp_path):
    a = tmp_path / "a"
    a.write_text("x")
    run = subprocess.run([sys.executable, "-m", "devtools.stamp", str(a)], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == stamp_of([a]) + "\n"
    run = subprocess.run([sys.executable, "-m", "devtools.stamp", str(a), str(tmp_path / "gone")], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip() == f"setup: cannot read {tmp_path / 'gone'}: No such file or directory"
    assert subprocess.run([sys.executable, "-m", "devtools.stamp"], cwd=ROOT, capture_output=True).returncode == 2
