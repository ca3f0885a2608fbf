"""Fault injection runs under the emulators only, and not where FLOWSUITE_FAULTS=off."""

from flowsuite.core import settings


def test_fault_injection_is_on_under_the_emulators_only(monkeypatch):
    monkeypatch.delenv("FLOWSUITE_FAULTS", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("FUNCTIONS_EMULATOR", "false")
    assert not settings.faults_enabled()
    monkeypatch.setenv("FUNCTIONS_EMULATOR", "true")
    assert settings.faults_enabled()


def test_an_emulator_instance_can_run_without_it_as_production_does(monkeypatch):
    monkeypatch.setenv("FUNCTIONS_EMULATOR", "true")
    monkeypatch.setenv("FLOWSUITE_FAULTS", "off")
    assert not settings.faults_enabled()


def test_a_fault_with_a_pause_holds_the_step_instead_of_failing_it():
    from flowsuite.core import faults

    assert faults.pause_of({"remaining": 1}) is None  # an ordinary fault raises
    assert faults.pause_of({"always": True, "pause_seconds": 2}) == 2.0
    assert faults.pause_of({"remaining": 1, "pause_seconds": 0.5}) == 0.5
    assert faults.pause_of({"pause_seconds": 600}) == faults.MAX_PAUSE_SECONDS  # capped: a callable must not time out
    for bad in (0, -3, "8", True, None, float("nan")):
        assert faults.pause_of({"pause_seconds": bad}) is None, bad
