"""ops_health: anyone but an admin gets up or down from one cached read."""

import pytest
from flowsuite.ops import health


class FakeStore:
    """Just enough of a Firestore client for liveness: counts document reads."""

    def __init__(self, fail: bool = False):
        self.reads, self.fail = 0, fail

    def collection(self, name):
        return self

    def document(self, doc_id):
        return self

    def get(self):
        self.reads += 1
        if self.fail:
            raise ConnectionError("unreachable")
        return object()


@pytest.fixture(autouse=True)
def fresh_cache():
    health._liveness.clear()
    yield
    health._liveness.clear()


def test_one_read_answers_every_caller_for_a_while():
    db = FakeStore()
    answers = [health.liveness(db, now=100.0 + i) for i in range(10)]
    assert answers == [{"status": "up"}] * 10 and db.reads == 1
    assert health.liveness(db, now=100.0 + health.LIVENESS_CACHE_SECONDS) == {"status": "up"} and db.reads == 2


def test_an_unreachable_store_is_down_and_cached_too():
    db = FakeStore(fail=True)
    assert health.liveness(db, now=5.0) == {"status": "down"}
    assert health.liveness(db, now=6.0) == {"status": "down"} and db.reads == 1


def test_prometheus_for_anyone_is_only_up():
    assert health.prometheus({"status": "up"}).strip().splitlines()[-1] == "flowsuite_up 1"
    assert "flowsuite_dead_letters" not in health.prometheus({"status": "down"})
