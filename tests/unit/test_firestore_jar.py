"""The Firestore emulator's wrapper jar: over the image's jar when present, else firebase-tools' own download."""

from __future__ import annotations

import zipfile

from devtools import firestore_jar


def test_the_wrapper_points_at_the_image_jar_and_is_rewritten_only_when_it_changes(tmp_path):
    image = tmp_path / "image" / "cloud-firestore-emulator.jar"
    image.parent.mkdir()
    image.write_bytes(b"jar")
    wrapper = tmp_path / "run" / "wrapper.jar"
    assert firestore_jar.ensure_wrapper_jar(image, wrapper) == wrapper
    with zipfile.ZipFile(wrapper) as zf:
        text = zf.read("META-INF/MANIFEST.MF").decode()
    assert f"Main-Class: {firestore_jar.MAIN_CLASS}\r\n" in text and f"Class-Path: {image.as_uri()}\r\n" in text
    before = wrapper.stat().st_mtime_ns
    assert firestore_jar.ensure_wrapper_jar(image, wrapper) == wrapper
    assert wrapper.stat().st_mtime_ns == before


def test_without_the_image_jar_setup_says_firebase_tools_downloads_its_own(tmp_path, capsys):
    missing = tmp_path / "nowhere.jar"
    wrapper = tmp_path / "wrapper.jar"
    assert firestore_jar.ensure_wrapper_jar(missing, wrapper) is None
    assert firestore_jar.main(missing, wrapper) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"setup: firestore emulator     no image jar at {missing}; firebase-tools downloads its own at the "
                   "first start (needs internet; kept in ~/.cache/firebase/emulators)"]
    assert not wrapper.exists()
