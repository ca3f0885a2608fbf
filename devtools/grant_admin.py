"""Grants a role to an existing account: the first admin of a project without email verification.

    python -m devtools.grant_admin EMAIL [--role admin|staff|member] [--project PROJECT_ID]

`ADMIN_EMAILS` / `STAFF_EMAILS` grant their role only to a verified email (anyone can
sign up with an address they do not own). A project whose app does not verify
emails makes its first admin with this command; that admin then sets every other
role with `identity_set_role`. The account must exist and have signed in to the app
once (its profile exists). The change goes through the suite's own code: the
profile's role, `identity.role_changed`, the `role` claim, and the account's other
sessions revoked; the user's next sign-in carries the role.

Where it runs: against the emulators when `FIREBASE_AUTH_EMULATOR_HOST` and
`FIRESTORE_EMULATOR_HOST` are set (as in `python -m devtools.suite exec -- ...`),
otherwise against the project (`--project`, else `GCLOUD_PROJECT`, else the default
project of `.firebaserc`) with Application Default Credentials
(`gcloud auth application-default login`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("admin", "staff", "member")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.grant_admin", description=__doc__.splitlines()[0])
    parser.add_argument("email", help="the account's email")
    parser.add_argument("--role", choices=ROLES, default="admin", help="the role to grant (default: admin)")
    parser.add_argument("--project", help="the Firebase project id (default: GCLOUD_PROJECT, then .firebaserc)")
    return parser.parse_args(argv)


def resolve_project(explicit: str | None, env: dict[str, str], firebaserc: str | None) -> str:
    """--project, else GCLOUD_PROJECT / GOOGLE_CLOUD_PROJECT, else .firebaserc's default. Pure."""
    if explicit:
        return explicit
    for var in ("GCLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        if env.get(var):
            return env[var]
    if firebaserc:
        default = json.loads(firebaserc).get("projects", {}).get("default")
        if default:
            return default
    raise SystemExit("No project: pass --project, or set GCLOUD_PROJECT, or add a default to .firebaserc.")


def main(argv: list[str]) -> int:
    args = parse(argv)
    rc = ROOT / ".firebaserc"
    project = resolve_project(args.project, dict(os.environ), rc.read_text() if rc.is_file() else None)
    os.environ["GCLOUD_PROJECT"] = project
    functions = str(ROOT / "functions")
    if functions not in sys.path:
        sys.path.insert(0, functions)
    from flowsuite.core import clients  # noqa: PLC0415 - after the project is set
    from flowsuite.core.errors import FlowsuiteError  # noqa: PLC0415
    from flowsuite.identity import service  # noqa: PLC0415

    where = "the emulators" if os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") else f"project {project}"
    auth = clients.auth()
    try:
        user = auth.get_user_by_email(args.email)
    except auth.UserNotFoundError:
        print(f"grant_admin: no account with the email {args.email} in {where}.", file=sys.stderr)
        return 1
    try:
        changed = service.set_role(clients.firestore(), auth, uid=user.uid, role=args.role,
                                   changed_by="devtools.grant_admin")
    except FlowsuiteError as exc:
        hint = " It has no profile yet: sign in to the app once, then run this again." \
            if exc.code == "not-found" else ""
        print(f"grant_admin: {exc.message}{hint}", file=sys.stderr)
        return 1
    state = "now" if changed else "already"
    print(f"grant_admin: {args.email} ({user.uid}) is {state} {args.role} in {where}; "
          "the role is in the user's next sign-in.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
