"""Accounts changed the ways a FlutterFlow app, the Firebase console and the Admin SDK change
them, through the Auth emulator's REST API (the same endpoints the Firebase SDKs call)."""

from __future__ import annotations

from typing import Any

from testkit import harness
from testkit.harness import PROJECT, User


def sign_up_anonymously() -> User:
    """FlutterFlow's anonymous sign-in (``signInAnonymously``): no email, and no blocking function
    runs, in production or on the emulator (Identity Platform does not support them for anonymous
    accounts), so the app's ``maybeCreateUser`` creates the profile."""
    out = harness._identity("accounts:signUp", {"returnSecureToken": True})
    return User(out["localId"], "", "", out["idToken"])


def link_email(user: User, email: str, password: str = "secret-password") -> User:
    """``linkWithCredential(EmailAuthProvider.credential(email, password))`` on an anonymous account:
    the Firebase SDKs send ``accounts:signUp`` with the account's ID token. Same uid, new tokens;
    no blocking function runs (Identity Platform re-runs beforeSignIn only for linked identity
    providers, never for email and password, and the emulator calls none)."""
    out = harness._identity("accounts:signUp", {"idToken": user.id_token, "email": email, "password": password,
                                                "returnSecureToken": True})
    assert out["localId"] == user.uid, out
    return User(user.uid, email, password, out["idToken"])


def change_in_console(uid: str, **fields: Any) -> None:
    """What the Firebase console or the Admin SDK's ``update_user`` does to an account, no
    function of the suite involved: ``email=...`` (which also revokes earlier tokens, as Auth
    does), ``disableUser=True/False``."""
    harness._identity(f"projects/{PROJECT}/accounts:update", {"localId": uid, **fields}, admin=True)


def delete_with_flutterflow(user: User) -> None:
    """FlutterFlow's own "Delete User" action: ``currentUser.delete()``, the account deleting itself
    in Auth with its ID token; nothing of the suite is called."""
    harness._identity("accounts:delete", {"idToken": user.id_token})
