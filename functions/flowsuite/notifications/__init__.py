"""Notifications: in-app inbox, FCM push, email, FlutterFlow push compatibility."""
