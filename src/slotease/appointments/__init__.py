"""Availability, booking and the appointment lifecycle."""
