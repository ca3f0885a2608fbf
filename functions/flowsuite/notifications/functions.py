"""Notifications functions: thin triggers over the service and FlutterFlow push code."""

from __future__ import annotations

from firebase_functions import tasks_fn
from firebase_functions.options import RetryConfig

from flowsuite.core import clients, log, options, settings
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.notifications import ffpush, models, service, triggers
from flowsuite.notifications.triggers import *  # noqa: F403 - its document triggers, served alone (registry.own_module)

__all__ = [
    "addFcmToken",
    *triggers.__all__,
    "notificationsSendScheduledPush",
]


@callable_function(request=models.AddFcmToken, response=models.AddFcmTokenAnswer)
def addFcmToken(ctx: CallContext, req: models.AddFcmToken) -> models.AddFcmTokenAnswer:  # noqa: N802 - FlutterFlow's name
    """Registers the device's push token for the caller (FlutterFlow's addFcmToken)."""
    token_id = service.add_fcm_token(clients.firestore(), caller_uid=ctx.require_uid(),
                                     user_doc_path=req.userDocPath, token=req.fcmToken, device_type=req.deviceType)
    return models.AddFcmTokenAnswer(status="Success!", token_id=token_id)


def _scheduled_push_retries() -> RetryConfig:
    """Cloud Tasks honours a task's schedule_time; its emulator does not, so there a task that
    is early raises and waits out the queue's backoff: kept short (and long-lived) there."""
    if settings.is_emulator():
        return RetryConfig(max_attempts=3000, min_backoff_seconds=1, max_backoff_seconds=2)
    return RetryConfig(max_attempts=400, min_backoff_seconds=5, max_backoff_seconds=10)


@options.trigger(tasks_fn.on_task_dispatched, retry_config=_scheduled_push_retries())
def notificationsSendScheduledPush(req: tasks_fn.CallableRequest) -> None:  # noqa: N802 - queue ids refuse "_"
    """Sends a FlutterFlow push whose scheduled_time has come."""
    data = req.data or {}
    with log.bind(domain="notifications", function="notificationsSendScheduledPush"):
        ffpush.due(clients.firestore(), clients.push_sender(), str(data.get("collection")), str(data.get("doc_id")))
