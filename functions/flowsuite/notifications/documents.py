"""Documents the notifications domain owns."""

from __future__ import annotations

from flowsuite.core.documents import DocRef, Document, Timestamp, collection


@collection("users/{uid}/notifications/{event_id}", read="the owner", write="notifications functions; the owner changes `read` only")
class InboxDoc(Document):
    """An in-app notification (the id is the event that caused it)."""

    type: str
    title: str
    body: str
    data: dict[str, str]
    read: bool
    created_time: Timestamp


@collection("users/{uid}/fcm_tokens/{token_id}", read="the owner",
            write="addFcmToken; the owner creates and deletes their own")
class FcmTokenDoc(Document):
    """A device's push token (FlutterFlow's schema)."""

    fcm_token: str
    device_type: str
    created_at: Timestamp


@collection("users/{uid}/settings/notifications", read="the owner", write="the owner")
class PreferencesDoc(Document):
    """Per notification type, channels turned off: {"order_paid": {"email": false}}."""


@collection("ff_push_notifications/{push_id}", read="admins",
            write="admins create; notifications writes status, num_sent, error")
class FFPushDoc(Document):
    """FlutterFlow broadcast push request."""

    notification_title: str
    notification_text: str
    notification_image_url: str | None = None
    notification_sound: str | None = None
    scheduled_time: Timestamp | None = None
    target_audience: str | None = None
    initial_page_name: str | None = None
    parameter_data: str | None = None
    user_refs: str | None = None
    sender: DocRef | None = None
    timestamp: Timestamp | None = None
    status: str | None = None
    num_sent: int | None = None
    error: str | None = None


@collection("ff_user_push_notifications/{push_id}", read="the sender, admins",
            write="a signed-in sender creates (sender = own reference); notifications writes status, num_sent, error")
class FFUserPushDoc(FFPushDoc):
    """FlutterFlow targeted push request ("Trigger Push Notification")."""


@collection("push_rate_limits/{uid}", read="nobody (server only)", write="notifications functions only")
class PushRateLimitDoc(Document):
    """A sender's targeted pushes in the current window."""

    window_start: Timestamp
    count: int
