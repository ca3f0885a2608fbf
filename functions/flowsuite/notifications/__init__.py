"""Notifications: in-app inbox, FCM push, email, FlutterFlow push compatibility."""


from flowsuite.core import clients as _clients
from flowsuite.core import options as _options
from flowsuite.core import settings as _settings

# Options every notifications function gets: sends can take a while on SMTP.
OPTIONS = _options.declare(__name__, timeout_sec=120,
                           max_instances=_settings.NOTIFICATIONS_MAX_INSTANCES)


def _push_sender():
    """FCM in production; a recording adapter under the emulators (FCM has none)."""
    from flowsuite.core import settings  # noqa: PLC0415
    from flowsuite.notifications.push import FcmSender, RecordingSender  # noqa: PLC0415

    return RecordingSender(_clients.firestore()) if settings.is_emulator() else FcmSender(_clients.app())


_clients.register("push_sender", _push_sender, cache=False)
