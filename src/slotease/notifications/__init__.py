"""Notifications: preferences, templates, channels and the automatic messages."""
