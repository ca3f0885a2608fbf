"""Requests and answers of the notifications callables (FlutterFlow's names and casing)."""

from typing import Literal

from pydantic import Field

from flowsuite.core.models import Request, Response
from flowsuite.notifications import config


class AddFcmToken(Request):
    """FlutterFlow's own payload for addFcmToken."""

    userDocPath: str = Field(min_length=7, max_length=200)  # noqa: N815 - FlutterFlow's name
    # FCM's registration-token shape (letters, digits, '_', ':', '-'), as firestore.rules checks it
    fcmToken: str = Field(min_length=1, max_length=config.FCM_TOKEN_MAX, pattern=config.FCM_TOKEN_PATTERN)  # noqa: N815
    deviceType: Literal["iOS", "Android", "Web"]  # noqa: N815


class AddFcmTokenAnswer(Response):
    status: str
    token_id: str
