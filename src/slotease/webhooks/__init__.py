"""Webhooks: organizations' HTTPS endpoints that receive signed copies of domain events."""
