"""Documents the ops domain owns. The kernel's own records, which ops also owns (events, deliveries,
dead letters, idempotency records, effects, ops_state), are declared in ``flowsuite.core.kernel_documents``."""

from flowsuite.core.documents import Document, Timestamp, collection


@collection("ops_probes/{probe_id}", read="admins", write="ops functions")
class ProbeDoc(Document):
    """A synthetic event sent through the bus and how often it arrived."""

    probe_id: str
    received: int
    note: str
    received_time: Timestamp | None = None
    last_event_id: str | None = None
    correlation_id: str | None = None
