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
