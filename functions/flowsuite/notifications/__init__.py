"""Notifications: in-app inbox, FCM push, email, FlutterFlow push compatibility."""


# Options every notifications function gets: sends can take a while on SMTP.
OPTIONS = {"timeout_sec": 120, "max_instances": 20}
