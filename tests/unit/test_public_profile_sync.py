"""public_profiles/{uid} follows users/{uid} as it is now (re-read in a transaction, never from a
late trigger's snapshot); a write that touched no public field reads and writes nothing."""

from __future__ import annotations

from flowsuite.identity import service


def test_public_fields_are_text_only():
    assert service.public_fields({"display_name": "Ada", "photo_url": 5, "email": "a@b.c", "role": "admin"}) == \
        {"display_name": "Ada", "photo_url": ""}


def test_a_write_that_touched_no_public_field_does_nothing():
    before = {"display_name": "Ada", "photo_url": "", "role": "member", "status": "active"}
    after = {**before, "role": "staff", "updated_time": "now", "photo_url": None}  # None shows as "" too
    # db=None: any read or write would raise
    assert service.sync_public_profile(None, "u1", before, after) == "unchanged"
