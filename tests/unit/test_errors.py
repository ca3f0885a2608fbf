from flowsuite.core import errors
from pydantic import BaseModel, Field, ValidationError


class Sample(BaseModel):
    quantity: int = Field(ge=1)
    name: str


def test_validation_error_lists_each_failing_field_without_the_input():
    try:
        Sample.model_validate({"quantity": 0, "secret": "x"})
    except ValidationError as exc:
        err = errors.invalid_request(exc)
    assert err.code == "invalid-argument"
    fields = {f["field"]: f for f in err.fields}
    assert set(fields) == {"quantity", "name"}
    assert fields["quantity"]["type"] == "greater_than_equal"
    assert "input" not in fields["quantity"]


def test_domain_errors_keep_their_code_and_details():
    code, message, details = errors.describe(errors.NotFoundError("no such order", details={"order_id": "o1"}), "c1")
    assert (code, message) == ("not-found", "no such order")
    assert details == {"order_id": "o1", "correlation_id": "c1"}


def test_unexpected_errors_become_internal_with_only_the_correlation_id():
    code, message, details = errors.describe(KeyError("database password is hunter2"), "c2")
    assert code == "internal"
    assert "hunter2" not in message
    assert details == {"correlation_id": "c2"}


def test_every_code_is_a_valid_callable_status():
    from firebase_functions import https_fn

    for cls in (errors.InvalidArgumentError, errors.UnauthenticatedError, errors.PermissionDeniedError,
                errors.NotFoundError, errors.FailedPreconditionError, errors.AlreadyExistsError,
                errors.ResourceExhaustedError):
        err = errors.to_https_error(cls("m") if cls is not errors.InvalidArgumentError else cls("m", fields=[]), "c")
        assert err.code == https_fn.FunctionsErrorCode(cls.code)


def test_transaction_contention_is_a_retryable_aborted_not_internal():
    code, _, details = errors.describe(ValueError("Failed to commit transaction in 5 attempts."), "c3")
    assert code == "aborted" and details["retryable"] is True
    assert errors.describe(ValueError("other"), "c4")[0] == "internal"


def test_an_expired_token_is_refused_before_any_work():
    import time

    import pytest
    from flowsuite.core.callables import CallableSpec, check_caller
    from flowsuite.core.models import Request, Response

    spec = CallableSpec("f", "ops", Request, Response, None, True, False, "f")
    check_caller(spec, "u1", {"exp": time.time() + 60})
    with pytest.raises(errors.UnauthenticatedError):
        check_caller(spec, "u1", {"exp": time.time() - 1})


def test_a_callable_body_that_is_not_json_or_not_data_is_named():
    from flowsuite.core.callables import body_problem

    assert body_problem(b'{"data": {"a": 1}}') is None and body_problem(b'{"data": null}') is None
    for raw in (b"not json", b"{", b"\xff\xfe", b"", b"[1]", b'"data"', b"5", b'{"x": 1}', b'{"data": 1, "x": 2}'):
        assert body_problem(raw), raw


def test_only_a_domain_error_that_says_so_is_replayed_by_name_only():
    from flowsuite.core import errors

    assert errors.manual_replay(errors.FailedPreconditionError("x", details={errors.MANUAL_REPLAY: True}))
    assert not errors.manual_replay(errors.FailedPreconditionError("x"))
    assert not errors.manual_replay(RuntimeError("x"))
