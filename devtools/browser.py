"""Finds the Chrome or Chromium that the console's browser test drives (through playwright-core).

    python -m devtools.browser     # prints the browser it would use, or what to install

Order: ``CHROME_PATH`` (a path, or a name looked up on PATH); then ``chromium``,
``chromium-browser``, ``google-chrome``, ``google-chrome-stable`` on PATH (Debian,
Ubuntu, Fedora, GitHub's Ubuntu runners); then, on macOS, the application bundles
``Google Chrome.app`` and ``Chromium.app`` in ``/Applications`` and ``~/Applications``.
A ``CHROME_PATH`` that names nothing runnable is an error, never silently skipped.
Standard library only: setup runs it too.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "CHROME_PATH"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAC_APPS = (
    ("Google Chrome.app", "Google Chrome"),
    ("Chromium.app", "Chromium"),
)


@dataclass(frozen=True)
class Browser:
    path: str
    source: str  # how it was found, said to the user

    def describe(self) -> str:
        return f"{self.path} ({self.source})"


class BrowserNotFound(Exception):
    """No usable browser; the message says what was searched and what to install."""


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def mac_bundles(root: Path, home: Path) -> list[Path]:
    """The macOS application bundles' executables, in search order."""
    return [
        folder / app / "Contents" / "MacOS" / exe
        for folder in (root / "Applications", home / "Applications")
        for app, exe in MAC_APPS
    ]


def find_browser(
    env: Mapping[str, str] | None = None,
    system: str | None = None,
    home: Path | None = None,
    root: Path = Path("/"),
) -> Browser:
    """The browser to use. ``env``, ``system`` (``platform.system()``), ``home`` and ``root``
    default to this machine's; tests pass a fake PATH and filesystem."""
    env = os.environ if env is None else env
    system = platform.system() if system is None else system
    home = Path.home() if home is None else home
    search_path = env.get("PATH", os.defpath)

    wanted = env.get(ENV_VAR, "").strip()
    if wanted:
        if os.sep in wanted or (os.altsep and os.altsep in wanted):
            found = wanted if _runnable(Path(wanted)) else None
        else:
            found = shutil.which(wanted, path=search_path)
        if found:
            return Browser(str(found), ENV_VAR)
        raise BrowserNotFound(
            f"{ENV_VAR}={wanted} is not a runnable file: point it at a Chrome or Chromium binary, "
            "or unset it to search PATH"
        )

    for name in NAMES:
        found = shutil.which(name, path=search_path)
        if found:
            return Browser(found, f"{name} on PATH")

    if system == "Darwin":
        for exe in mac_bundles(root, home):
            if _runnable(exe):
                app = next(part for part in exe.parts if part.endswith(".app"))
                return Browser(str(exe), f"macOS app {app}")

    raise BrowserNotFound(not_found_message(system, env, root, home))


def is_wsl(env: Mapping[str, str], release: str | None = None) -> bool:
    release = platform.release() if release is None else release
    return bool(env.get("WSL_DISTRO_NAME")) or "microsoft" in release.lower()


def not_found_message(system: str, env: Mapping[str, str], root: Path = Path("/"), home: Path | None = None) -> str:
    searched = f"{ENV_VAR}, " + ", ".join(NAMES) + " on PATH"
    if system == "Darwin":
        home = Path.home() if home is None else home
        searched += ", " + ", ".join(str(p.parents[2]) for p in mac_bundles(root, home))
        install = "install Google Chrome (or `brew install --cask google-chrome`, or `brew install --cask chromium`)"
    elif system == "Linux":
        install = (
            "install one: Debian `sudo apt-get install chromium`; Ubuntu Google Chrome's .deb "
            "(google-chrome-stable; Ubuntu's chromium is a snap, which automation often cannot drive); "
            "Fedora `sudo dnf install chromium`"
        )
        if is_wsl(env):
            install = "inside WSL2 (a Windows browser is not used): " + install
    else:
        install = "install Google Chrome or Chromium (on Windows, run the suite inside WSL2: see the README)"
    return f"no Chrome or Chromium found (looked at {searched}): {install}, or set {ENV_VAR} to its binary"


def main() -> int:
    try:
        found = find_browser()
    except BrowserNotFound as exc:
        print(f"missing: {exc}")
        return 1
    print(found.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
