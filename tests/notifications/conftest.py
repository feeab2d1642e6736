"""A local SMTP server for the modules that send email, and a clean job table per test.

A module that sends email points its settings at the server:

    @pytest.fixture(scope="module")
    def settings(settings: Settings, mail: tuple[Mailbox, int]) -> Settings:
        return with_smtp(settings, mail[1])
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import Owner
from tests.notifications.support import Mailbox, smtp_server


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mailbox(mail: tuple[Mailbox, int]) -> Mailbox:
    mail[0].clear()
    return mail[0]


@pytest.fixture
def clean_jobs(owner: Owner) -> None:
    owner.execute("delete from public.procrastinate_jobs")
