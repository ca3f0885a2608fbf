#!/usr/bin/env bash
# Idempotent, incremental setup. Each step keeps a stamp (a hash of its inputs)
# under .run/stamps and is skipped when nothing changed, so a second run takes seconds.
# Portable (Linux, macOS, WSL2): POSIX tools and Python only, no root needed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .run/stamps
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed (tried ${PYTHON:-python3.11} and python3; set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }
stamp_of() { "$PY" -m devtools.stamp "$@"; }
fresh() { [ -f ".run/stamps/$1" ] && [ "$(cat ".run/stamps/$1")" = "$2" ]; }
mark() { echo "$2" > ".run/stamps/$1"; }

step() { printf 'setup: %-22s %s\n' "$1" "$2"; }

# 1. functions/venv: exactly functions/requirements.txt (what a deploy installs)
s=$(stamp_of functions/requirements.txt)
if fresh functions-venv "$s" && [ -x functions/venv/bin/python ]; then
  step functions/venv "up to date"
else
  step functions/venv "building from functions/requirements.txt"
  rm -rf functions/venv
  "$PY" -m venv functions/venv
  functions/venv/bin/pip install -q --disable-pip-version-check -r functions/requirements.txt 2>&1 | quiet_pip
  functions/venv/bin/python -c "import firebase_functions, firebase_admin, google.cloud.firestore, pydantic, stripe" \
    || { echo "setup: functions/venv is missing a runtime dependency" >&2; exit 1; }
  mark functions-venv "$s"
fi

# 2. .venv: development and test tooling
s=$(stamp_of requirements-dev.txt functions/requirements.txt)
if fresh dev-venv "$s" && [ -x .venv/bin/python ]; then
  step .venv "up to date"
else
  step .venv "installing requirements-dev.txt"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | quiet_pip
  mark dev-venv "$s"
fi

# 3. firebase-tools, pinned in package-lock.json
s=$(stamp_of package-lock.json)
if fresh npm "$s" && [ -x node_modules/.bin/firebase ]; then
  step firebase-tools "up to date"
else
  step firebase-tools "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  mark npm "$s"
fi

# 4. the ops console bundle (esbuild over the pinned Firebase JS SDK and uPlot): app.js, app.css
s=$(stamp_of package-lock.json console/src/*.js firebase.json)
if fresh console "$s" && [ -f console/app.js ] && [ -f console/app.css ]; then
  step "ops console" "up to date"
else
  .venv/bin/python -m devtools.console_build
  mark console "$s"
fi

# 5. a browser for the console's browser test (devtools/browser.py: CHROME_PATH, chromium,
# chromium-browser, google-chrome(-stable), the macOS app bundles). Installing Debian's
# chromium as root is only a convenience; without a browser only that test fails, saying what to install.
if found=$(.venv/bin/python -m devtools.browser); then
  step browser "$found"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${CHROME_PATH:-}" ]; then
  step browser "apt-get install chromium"
  if { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
       || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } \
     && found=$(.venv/bin/python -m devtools.browser); then
    step browser "$found"
  else
    step browser "apt-get could not install chromium: install Chrome or Chromium, or set CHROME_PATH"
  fi
else
  step browser "$found"
fi

# 6. the Firestore emulator wrapper jar, local env file
.venv/bin/python -m devtools.firestore_jar
for f in .env.local .secret.local; do
  if [ ! -f "functions/$f" ]; then
    cp "functions/$f.example" "functions/$f"
    step "functions/$f" "created from functions/$f.example"
  fi
done
