import importlib

from devtools import deploy


def test_a_domain_deploys_exactly_its_functions(capsys):
    assert deploy.main(["domain", "payments", "--project", "acme-prod", "--dry-run"]) == 0
    printed = capsys.readouterr().out.strip().split()
    assert printed[1:3] == ["deploy", "--only"] and printed[-2:] == ["--project", "acme-prod"]
    only = set(printed[3].split(","))
    expected = {f"functions:{n}" for n in importlib.import_module("flowsuite.payments.functions").__all__}
    assert only == expected and "functions:payments_stripe_webhook" in only


def test_everything_is_plain_firebase_deploy(capsys):
    deploy.main(["all", "--dry-run"])
    assert capsys.readouterr().out.strip().endswith("firebase deploy")


def test_an_unknown_domain_is_refused():
    import pytest

    with pytest.raises(SystemExit, match="unknown domain"):
        deploy.main(["domain", "billing", "--dry-run"])
