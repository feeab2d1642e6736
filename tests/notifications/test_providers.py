"""The HTTP providers against local servers that check requests the way the real ones do,
with failures on demand: retries, fallback and the circuit breaker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from slotease.config import Settings
from slotease.kit import crypto
from slotease.notifications.channels.base import (
    Message,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from slotease.notifications.channels.breaker import Breaker, CircuitOpen, MemoryBreakerStore
from slotease.notifications.channels.fcm import FcmProvider
from slotease.notifications.channels.sendgrid import SendGridProvider
from slotease.notifications.channels.twilio import TwilioProvider
from tests.factories import Owner, make_organization, make_user, seal
from tests.notifications.support import (
    Provider,
    fcm_check,
    http_server,
    jobs,
    run_jobs,
    sendgrid_check,
    twilio_check,
    worker_app,
)

pytestmark = pytest.mark.anyio

SID, TOKEN = "AC" + "1" * 32, "twilio-token"
MESSAGE = Message(to="+33612345678", subject="Hello", text="Your turn", data={"n": "1"})


@pytest.fixture
def twilio() -> Iterator[tuple[Provider, str]]:
    provider = Provider()
    with http_server(provider, twilio_check(SID, TOKEN)) as url:
        yield provider, url


async def test_twilio_gets_basic_auth_and_a_form(twilio: tuple[Provider, str]) -> None:
    server, url = twilio
    async with httpx.AsyncClient() as client:
        sms = TwilioProvider(
            client, account_sid=SID, auth_token=TOKEN, sender="+15550001", base_url=url
        )
        receipt = await sms.send(MESSAGE)
        assert receipt.provider == "twilio"
        assert receipt.message_id == "SM" + "a" * 32
        wrong = TwilioProvider(
            client, account_sid=SID, auth_token="bad", sender="+1555", base_url=url
        )
        with pytest.raises(PermanentDeliveryError, match="401"):
            await wrong.send(MESSAGE)
    assert b"To=%2B33612345678" in server.requests[0]["body"]


async def test_sendgrid_and_fcm_get_what_their_apis_require() -> None:
    sendgrid, fcm = Provider(), Provider()
    with (
        http_server(sendgrid, sendgrid_check("sg-key")) as sendgrid_url,
        http_server(fcm, fcm_check("proj", "fcm-token")) as fcm_url,
    ):
        async with httpx.AsyncClient() as client:
            mail = SendGridProvider(
                client, api_key="sg-key", base_url=sendgrid_url, sender="Clinic <c@example.com>"
            )
            assert (await mail.send(MESSAGE)).message_id == "sg-message-1"
            push = FcmProvider(
                client, project_id="proj", access_token="fcm-token", base_url=fcm_url
            )
            assert (await push.send(MESSAGE)).message_id == "projects/proj/messages/0:1"
            bad = FcmProvider(client, project_id="proj", access_token="nope", base_url=fcm_url)
            with pytest.raises(PermanentDeliveryError):
                await bad.send(MESSAGE)
    assert [r["status"] for r in sendgrid.requests] == [202]
    assert [r["status"] for r in fcm.requests] == [200, 401]


async def test_5xx_and_timeouts_are_transient(twilio: tuple[Provider, str]) -> None:
    server, url = twilio
    server.script = ["500", "slow"]
    server.slow_seconds = 1.0
    async with httpx.AsyncClient(timeout=0.3) as client:
        sms = TwilioProvider(
            client, account_sid=SID, auth_token=TOKEN, sender="+1555", base_url=url
        )
        with pytest.raises(TransientDeliveryError, match="HTTP 500"):
            await sms.send(MESSAGE)
        with pytest.raises(TransientDeliveryError, match="timed out"):
            await sms.send(MESSAGE)
        assert (await sms.send(MESSAGE)).message_id


async def test_the_breaker_opens_then_probes_once(twilio: tuple[Provider, str]) -> None:
    server, url = twilio
    now = [0.0]
    store = MemoryBreakerStore(clock=lambda: now[0])
    breaker = Breaker(store, threshold=2, cooldown=30)
    server.script = ["500", "500", "500"]
    async with httpx.AsyncClient() as client:
        sms = TwilioProvider(
            client, account_sid=SID, auth_token=TOKEN, sender="+1555", base_url=url
        )

        async def send() -> object:
            return await breaker.call("twilio", lambda: sms.send(MESSAGE))

        for _ in range(2):
            with pytest.raises(TransientDeliveryError, match="HTTP 500"):
                await send()
        with pytest.raises(CircuitOpen):
            await send()
        assert len(server.requests) == 2  # open: the provider is not even called
        now[0] = 31
        with pytest.raises(TransientDeliveryError, match="HTTP 500"):
            await send()  # the half-open probe fails: open again
        with pytest.raises(CircuitOpen):
            await send()
        now[0] = 62
        await send()  # a successful probe closes it
        await send()
    assert len(server.requests) == 5


async def test_a_failing_sms_is_retried_then_falls_back_to_email(
    owner: Owner, settings: Settings, twilio: tuple[Provider, str]
) -> None:
    server, url = twilio
    server.script = ["500"] * 10
    staff = make_user(owner)
    customer = make_user(owner)
    org = make_organization(owner, staff)
    owner.execute(
        "update public.user_profiles set phone = %s where user_id = %s",
        (seal(crypto.PHONE, customer.id, "+33 6 12 34 56 78"), customer.id),
    )
    owner.execute(
        "insert into public.notification_preferences (user_id, fallback_order) values (%s, '{sms,email}')",
        (customer.id,),
    )
    notification = uuid.uuid4()
    owner.execute(
        "insert into public.notifications (id, organization_id, user_id, channel, subject, body)"
        " values (%s, %s, %s, 'sms', 'Hi', 'Your turn')",
        (notification, org, customer.id),
    )
    owner.execute(
        "select app.enqueue_job('notifications', 'notifications.deliver', %s::jsonb)",
        (f'{{"ids": ["{notification}"]}}',),
    )
    twilio_settings = settings.model_copy(
        update={"twilio_account_sid": SID, "twilio_auth_token": TOKEN, "twilio_from": "+1555",
                "twilio_base_url": url, "job_max_attempts": 2, "breaker_failures": 5}
    )  # fmt: skip
    async with worker_app(twilio_settings) as (app, _):
        await run_jobs(app)
        (job,) = jobs(owner, "notifications.deliver")
        assert job[2] == "todo"
        assert job[4] is not None
        assert owner.execute(
            "select status, attempts, last_error from public.notifications where id = %s",
            (notification,),
        ).fetchone() == ("queued", 1, 'HTTP 500: {"message": "internal error"}')
        owner.execute("update public.procrastinate_jobs set scheduled_at = now()")
        await run_jobs(app)  # the last attempt: SMS fails for good, email takes over
    rows = owner.execute(
        "select channel, status, attempts, last_error from public.notifications"
        " where user_id = %s order by created_at",
        (customer.id,),
    ).fetchall()
    assert rows[0][:3] == ("sms", "failed", 2)
    # No email provider is configured in this module: recorded as such, never as sent.
    assert rows[1][:2] == ("email", "skipped")
    assert "no email provider" in rows[1][3]
    assert len(server.requests) == 2
