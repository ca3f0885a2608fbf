"""Builds the wrapper jar that lets firebase-tools start the image's Firestore emulator.

firebase-tools runs the Firestore emulator with ``java -jar <path>``. The jar that
ships with the machine image's ``google-cloud-cli-firestore-emulator`` package has
no ``Main-Class`` (gcloud starts it with ``-cp``), so a one-file jar holding only a
manifest points at it. Where the image has no jar, firebase-tools downloads its own
(which needs internet); we say so in one line and leave that path alone.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

IMAGE_JAR = Path("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
ROOT = Path(__file__).resolve().parent.parent
WRAPPER_JAR = ROOT / ".run" / "firestore-emulator-wrapper.jar"


def manifest(image_jar: Path = IMAGE_JAR) -> str:
    return (
        "Manifest-Version: 1.0\r\n"
        f"Main-Class: {MAIN_CLASS}\r\n"
        f"Class-Path: {image_jar.as_uri()}\r\n"
        "\r\n"
    )


def ensure_wrapper_jar(image_jar: Path = IMAGE_JAR, wrapper: Path = WRAPPER_JAR) -> Path | None:
    """Returns the wrapper jar's path, or None when the image has no emulator jar."""
    if not image_jar.is_file():
        return None
    wanted = manifest(image_jar)
    if wrapper.is_file():
        with zipfile.ZipFile(wrapper) as zf:
            if zf.read("META-INF/MANIFEST.MF").decode() == wanted:
                return wrapper
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wrapper, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", wanted)
    return wrapper


def download_note(image_jar: Path = IMAGE_JAR) -> str:
    """The one line said where the image has no jar (macOS, stock CI runners, most laptops)."""
    return (
        f"no image jar at {image_jar}; firebase-tools downloads its own at the first start "
        "(needs internet; kept in ~/.cache/firebase/emulators)"
    )


def main(image_jar: Path = IMAGE_JAR, wrapper: Path = WRAPPER_JAR) -> int:
    jar = ensure_wrapper_jar(image_jar, wrapper)
    if jar is None:
        print(f"setup: firestore emulator     {download_note(image_jar)}")
    else:
        print(f"setup: firestore emulator     wrapper jar {rel(jar)}")
    return 0


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
