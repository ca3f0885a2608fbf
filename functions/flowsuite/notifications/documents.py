"""Documents the notifications domain owns."""

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
    event_id: str
    correlation_id: str


@collection("users/{uid}/fcm_tokens/{token_id}", read="the owner",
            write="addFcmToken only (it keeps a user's newest 10 and deletes the older ones); the owner deletes "
                  "their own (the rules refuse direct creates and updates)",
            read_by={"identity": "reconciliation pages the collection group for documents under a uid with neither "
                               "a profile nor an Auth account (written by a deleted account's unexpired token "
                               "after its erasure) and publishes identity.user_deleted for that uid"})
class FcmTokenDoc(Document):
    """A device's push token (FlutterFlow's schema). `fcm_token` has FCM's shape: at most 1024
    characters of letters, digits, `_`, `:` and `-` (addFcmToken refuses anything else). A user
    keeps at most 10, their newest by `created_at` (server time), and a push reaches at most 10
    devices of one user, their newest."""

    fcm_token: str
    device_type: str
    created_at: Timestamp


@collection("users/{uid}/settings/notifications", read="the owner",
            write="the owner, while the profile exists and is active",
            read_by={"identity": "reconciliation pages the collection group for documents under a uid with neither "
                               "a profile nor an Auth account (written by a deleted account's unexpired token "
                               "after its erasure) and publishes identity.user_deleted for that uid"})
class PreferencesDoc(Document):
    """Per notification type, channels turned off: {"order_paid": {"email": false}}."""


@collection("ff_push_notifications/{push_id}", read="admins",
            write="admins create (sender = own reference, FlutterFlow's fields only, each checked for type "
                  "and size); notifications writes status, num_sent, error, and erases a deleted user from it")
class FFPushDoc(Document):
    """FlutterFlow broadcast push request. The app's fields and their limits (rules and code):
    title 1-200 characters, text 1-1000, image URL an https:// URL of at most 2048,
    sound 100, page name 200, parameter data 2000, user_refs 50,000; target_audience
    "", "All", "iOS" or "Android"; scheduled_time at most 30 days ahead. A broadcast
    naming a sender is sent only while the sender's profile is `active` with the role
    `admin` (checked again when a scheduled one comes due); one without a sender
    (written in the console or with the Admin SDK) is sent as it is."""

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
    scheduled_for: Timestamp | None = None  # written when the push is scheduled
    processed_time: Timestamp | None = None  # when it succeeded or failed
    admitted_time: Timestamp | None = None  # a targeted push passed its sender's cap and rate limit
    # The uids user_refs names, recorded when the push is processed: erasing an account finds
    # the pushes naming it (array-contains) and takes it out of them.
    recipient_uids: list[str] | None = None


@collection("ff_user_push_notifications/{push_id}", read="the sender, admins",
            write="a signed-in sender, not anonymous, creates (sender = own reference, fields as for broadcasts); "
                  "notifications writes status, num_sent, error, and erases a deleted user from it")
class FFUserPushDoc(FFPushDoc):
    """FlutterFlow targeted push request ("Trigger Push Notification"). It names at most
    `PUSH_MAX_RECIPIENTS` users (10; staff `PUSH_MAX_RECIPIENTS_STAFF`, admins
    `PUSH_MAX_RECIPIENTS_ADMIN`), and a sender reaches at most `PUSH_RATE_LIMIT` recipients
    a minute; a scheduled one must still fit the cap of its sender's role when it comes due.
    An anonymous account may not send one. A refused push is `failed` with its reason and
    sends nothing."""

    admitted_recipients: int | None = None  # the recipients charged to the sender's rate limit


@collection("push_rate_limits/{uid}", read="nobody (server only)", write="notifications functions only")
class PushRateLimitDoc(Document):
    """The recipients a sender's targeted pushes reached in the current window."""

    window_start: Timestamp
    count: int


@collection("email_suppressions/{uid}", read="nobody (server only)", write="notifications functions only")
class EmailSuppressionDoc(Document):
    """An address a mail server refused for good (5xx): no more email to it until the user's address changes."""

    uid: str
    address_hash: str  # sha256 of the lower-cased address: the address itself is not kept
    code: int
    reason: str
    created_time: Timestamp
