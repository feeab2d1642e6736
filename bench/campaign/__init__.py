"""A booking campaign opening under locust (issue 14): `python -m bench.campaign`."""
