"""Browser discovery (devtools/browser.py) over a fake PATH and filesystem: order, CHROME_PATH, macOS bundles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools import browser
from devtools.browser import BrowserNotFound, find_browser


def exe(path: Path, runnable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755 if runnable else 0o644)
    return path


@pytest.fixture
def fs(tmp_path):
    """Two PATH folders, an empty root and home, and a search on Linux unless told otherwise."""
    bins = [tmp_path / "bin1", tmp_path / "bin2"]
    for folder in bins:
        folder.mkdir()
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()

    def search(system="Linux", **env):
        env.setdefault("PATH", os.pathsep.join(map(str, bins)))
        return find_browser(env=env, system=system, home=home, root=root)

    search.bins, search.root, search.home = bins, root, home
    return search


def mac_app(base: Path, app: str, binary: str) -> Path:
    return exe(base / "Applications" / app / "Contents" / "MacOS" / binary)


def test_the_names_are_tried_in_order_whatever_their_place_on_path(fs):
    stable = exe(fs.bins[0] / "google-chrome-stable")
    assert fs().path == str(stable)
    chrome = exe(fs.bins[0] / "google-chrome")
    assert fs().path == str(chrome)
    snap = exe(fs.bins[1] / "chromium-browser")
    assert fs().path == str(snap)
    chromium = exe(fs.bins[1] / "chromium")
    found = fs()
    assert found.path == str(chromium) and found.source == "chromium on PATH"
    assert found.describe() == f"{chromium} (chromium on PATH)"


def test_an_earlier_path_folder_wins_for_the_same_name(fs):
    first = exe(fs.bins[0] / "google-chrome")
    exe(fs.bins[1] / "google-chrome")
    assert fs().path == str(first)


def test_a_file_that_cannot_run_is_not_a_browser(fs):
    exe(fs.bins[0] / "chromium", runnable=False)
    chrome = exe(fs.bins[1] / "google-chrome")
    assert fs().path == str(chrome)


def test_chrome_path_wins_over_path(fs, tmp_path):
    exe(fs.bins[0] / "chromium")
    mine = exe(tmp_path / "opt" / "chrome")
    found = fs(CHROME_PATH=str(mine))
    assert found.path == str(mine) and found.source == "CHROME_PATH"


def test_chrome_path_may_be_a_name_on_path(fs):
    exe(fs.bins[0] / "chromium")
    stable = exe(fs.bins[1] / "google-chrome-stable")
    assert fs(CHROME_PATH="google-chrome-stable").path == str(stable)


@pytest.mark.parametrize("value", ["/nowhere/chrome", "no-such-browser", "FILE"])
def test_a_chrome_path_naming_nothing_runnable_is_an_error_not_a_fallback(fs, tmp_path, value):
    exe(fs.bins[0] / "chromium")
    if value == "FILE":
        value = str(exe(tmp_path / "not-runnable", runnable=False))
    with pytest.raises(BrowserNotFound) as err:
        fs(CHROME_PATH=value)
    assert str(err.value).startswith(f"CHROME_PATH={value} is not a runnable file")


def test_an_empty_chrome_path_is_unset(fs):
    chromium = exe(fs.bins[0] / "chromium")
    assert fs(CHROME_PATH="  ").path == str(chromium)


def test_macos_bundles_after_path_chrome_before_chromium_system_before_user(fs):
    user_chromium = mac_app(fs.home, "Chromium.app", "Chromium")
    assert fs(system="Darwin").path == str(user_chromium)
    chromium = mac_app(fs.root, "Chromium.app", "Chromium")
    assert fs(system="Darwin").path == str(chromium)
    chrome = mac_app(fs.root, "Google Chrome.app", "Google Chrome")
    found = fs(system="Darwin")
    assert found.path == str(chrome) and found.source == "macOS app Google Chrome.app"
    on_path = exe(fs.bins[1] / "google-chrome")
    assert fs(system="Darwin").path == str(on_path)


def test_macos_bundles_are_not_searched_elsewhere(fs):
    mac_app(fs.root, "Google Chrome.app", "Google Chrome")
    with pytest.raises(BrowserNotFound):
        fs(system="Linux")


def test_nothing_found_says_what_was_searched_and_what_to_install(fs):
    with pytest.raises(BrowserNotFound) as err:
        fs(system="Linux")
    text = str(err.value)
    assert text.startswith("no Chrome or Chromium found (looked at CHROME_PATH, chromium, chromium-browser, "
                           "google-chrome, google-chrome-stable on PATH)")
    assert "sudo apt-get install chromium" in text and text.endswith("or set CHROME_PATH to its binary")
    assert "WSL2" not in text

    with pytest.raises(BrowserNotFound) as err:
        fs(system="Darwin")
    text = str(err.value)
    assert str(fs.root / "Applications" / "Google Chrome.app") in text
    assert str(fs.home / "Applications" / "Chromium.app") in text
    assert "brew install --cask google-chrome" in text

    with pytest.raises(BrowserNotFound) as err:
        fs(system="Linux", WSL_DISTRO_NAME="Ubuntu")
    assert "inside WSL2 (a Windows browser is not used)" in str(err.value)

    with pytest.raises(BrowserNotFound) as err:
        fs(system="Windows")
    assert "WSL2" in str(err.value)


def test_wsl_is_told_by_its_kernel_or_its_variable():
    assert browser.is_wsl({}, release="5.15.167.4-microsoft-standard-WSL2")
    assert browser.is_wsl({"WSL_DISTRO_NAME": "Ubuntu"}, release="6.1.0")
    assert not browser.is_wsl({}, release="6.1.0-18-amd64")


def test_the_command_line_prints_the_browser_or_what_is_missing(monkeypatch, capsys, tmp_path):
    chromium = exe(tmp_path / "bin" / "chromium")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("CHROME_PATH", raising=False)
    assert browser.main() == 0
    assert capsys.readouterr().out == f"{chromium} (chromium on PATH)\n"
    monkeypatch.setenv("CHROME_PATH", str(tmp_path / "missing"))
    assert browser.main() == 1
    assert capsys.readouterr().out.startswith(f"missing: CHROME_PATH={tmp_path / 'missing'} is not a runnable file")
