"""The local SMTP server and clean job table of the notification tests, for the account
emails (verification and recovery links)."""

from tests.notifications.conftest import clean_jobs, mail, mailbox

__all__ = ["clean_jobs", "mail", "mailbox"]
