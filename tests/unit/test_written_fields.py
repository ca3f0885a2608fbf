"""The integration run's check of written fields against document models (testkit/fields.py)."""

import json

from testkit import fields


def test_fields_written_are_read_from_the_emulator_log_after_an_offset(tmp_path):
    log = tmp_path / "emulators.log"
    old = json.dumps({"message": "firestore wrote", "fs_fields": {"orders": ["old_field"]}})
    log.write_text(f"i  functions: {old}\n")
    offset = log.stat().st_size
    lines = [{"message": "firestore wrote", "fs_fields": {"orders": ["status", "total"], "_faults": ["remaining"]}},
             {"message": "delivery processed", "fs_fields": {"orders": ["not_a_write_line"]}},
             {"message": "firestore wrote", "fs_fields": {"orders": ["paid_time"], "notifications": ["read"]}}]
    with open(log, "a") as handle:
        handle.write("garbage line\n")
        for line in lines:
            handle.write(f">  {json.dumps(line)}\n")
    assert fields.written(log, offset) == {"orders": {"status", "total", "paid_time"}, "_faults": {"remaining"},
                                           "notifications": {"read"}}


def test_what_is_written_must_be_declared():
    from devtools import contracts

    documented = fields.declared(contracts.load()["collections"])
    assert {"status", "total", "request_hash"} <= documented["orders"]
    assert "read" in documented["notifications"] and "fields" not in documented
    seen = {"orders": {"status", "surprise"}, "_faults": {"remaining"}, "nobody_declared": {"x"}}
    assert fields.undocumented(seen, documented) == {"nobody_declared": ["x"], "orders": ["surprise"]}
