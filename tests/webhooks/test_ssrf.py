"""The SSRF guard, with its rules on: when a URL is saved and again when it is called."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from slotease.config import Settings
from slotease.webhooks import ssrf
from tests.appointments.arrange import make_clinic
from tests.factories import Owner
from tests.notifications.support import run_jobs, worker_app
from tests.webhooks.support import book, create_webhook, deliveries, webhook_state

pytestmark = pytest.mark.anyio

PUBLIC = ipaddress.ip_address("93.184.216.34")


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    assert settings.allow_private_webhooks is False
    return settings


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",
        "ftp://hooks.example.com/in",
        "https://127.0.0.1/in",
        "https://10.0.0.1/in",
        "https://192.168.1.10/in",
        "https://100.64.0.1/in",
        "https://[::1]/in",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]/in",
        "https://[fe80::1]/in",
        "https://[fd00::1]/in",
        "https://[fec0::1]/in",
        "https://[2002:c0a8:101::1]/in",
        "https://[2002:5db8:d822::1]/in",
        "https://[64:ff9b::a00:1]/in",
        "https://[::ffff:10.0.0.1]/in",
        "https://224.0.0.1/in",
        "https://0.0.0.0/in",
        "https://localhost/in",
        "https://user:pw@hooks.example.com/in",
        "https:///in",
        "https://hooks.example.com:notaport/in",
    ],
)
async def test_unsafe_urls_are_refused_when_saved(
    client: httpx.AsyncClient, owner: Owner, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_resolve = ssrf.resolve

    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        # Only names that must be looked up for real reach the system resolver.
        return [PUBLIC] if host == "hooks.example.com" else await real_resolve(host, port)

    monkeypatch.setattr(ssrf, "resolve", resolve)
    clinic = make_clinic(owner)
    response = await client.post(
        f"/v1/organizations/{clinic.org_id}/webhooks",
        json={"url": url, "events": ["ticket.called"]},
        headers=clinic.admin.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert owner.execute(
        "select count(*) from public.webhooks where organization_id = %s", (clinic.org_id,)
    ).fetchone() == (0,)


async def test_a_name_that_resolves_to_any_private_address_is_refused(
    client: httpx.AsyncClient, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        return [PUBLIC, ipaddress.ip_address("10.1.2.3")]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    clinic = make_clinic(owner)
    response = await client.post(
        f"/v1/organizations/{clinic.org_id}/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["ticket.called"]},
        headers=clinic.admin.headers,
    )
    assert response.status_code == 422
    # Naming the address would map the internal network for whoever asks.
    detail = response.json()["detail"]
    assert detail == "The host hooks.example.com resolves to a private or reserved address."


@pytest.mark.parametrize("change", ["create", "update"])
async def test_the_url_is_resolved_before_the_transaction_opens(
    client: httpx.AsyncClient, owner: Owner, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    clinic = make_clinic(owner)
    url = "https://hooks.example.com/in"
    open_transactions: list[int] = []

    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        row = owner.execute(
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and state like 'idle in transaction%%'"
        ).fetchone()
        assert row is not None
        open_transactions.append(row[0])
        return [PUBLIC]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    if change == "create":
        await create_webhook(client, clinic.admin, clinic.org_id, url, ["ticket.called"])
    else:
        webhook = await create_webhook(
            client, clinic.admin, clinic.org_id, "https://93.184.216.34/in", ["ticket.called"]
        )
        response = await client.patch(
            f"/v1/webhooks/{webhook['id']}", json={"url": url}, headers=clinic.admin.headers
        )
        assert response.status_code == 200, response.text
    assert open_transactions == [0]


async def test_an_update_to_an_unsafe_url_is_refused(
    client: httpx.AsyncClient, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        return [PUBLIC]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    clinic = make_clinic(owner)
    webhook = await create_webhook(
        client, clinic.admin, clinic.org_id, "https://hooks.example.com/in", ["ticket.called"]
    )
    response = await client.patch(
        f"/v1/webhooks/{webhook['id']}",
        json={"url": "https://127.0.0.1/in"},
        headers=clinic.admin.headers,
    )
    assert response.status_code == 422
    assert owner.execute(
        "select url from public.webhooks where id = %s", (webhook["id"],)
    ).fetchone() == ("https://hooks.example.com/in",)


async def test_a_name_that_now_resolves_privately_is_not_called(
    client: httpx.AsyncClient, owner: Owner, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {"hooks.example.com": [PUBLIC]}
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        looked_up.append(host)
        return answers[host]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    clinic = make_clinic(owner)
    webhook = await create_webhook(
        client, clinic.admin, clinic.org_id, "https://hooks.example.com/in", ["appointment.created"]
    )
    owner.execute("delete from public.procrastinate_jobs")
    await book(client, owner, clinic, "10:00")
    # The name's owner points it at the metadata service after it was checked (rebinding).
    answers["hooks.example.com"] = [ipaddress.ip_address("169.254.169.254")]
    looked_up.clear()

    async with worker_app(settings) as (app, _):
        await run_jobs(app)

    assert looked_up == ["hooks.example.com"]
    ((_, _, status, attempts, code, latency, error, next_at, _, _),) = deliveries(
        owner, webhook["id"]
    )
    assert (status, attempts, code, latency, next_at) == ("failed", 1, None, None, None)
    assert error == "Refused: The host hooks.example.com resolves to a private or reserved address."
    assert webhook_state(owner, webhook["id"])[2] == 1


async def test_the_connection_goes_to_the_checked_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: int) -> list[ssrf.IpAddress]:
        return [ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")]

    monkeypatch.setattr(ssrf, "resolve", resolve)
    where = await ssrf.target("https://hooks.example.com:8443/in?x=1", allow_private=False)
    assert where.url == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/in?x=1"
    assert (where.server_name, where.host_header) == ("hooks.example.com", "hooks.example.com:8443")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("::", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("172.16.5.4", False),
        # 6to4 relays to the IPv4 address it embeds, and so does NAT64; site-local is private.
        ("2002:c0a8:101::1", False),
        ("2002:5db8:d822::1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b::5db8:d822", False),
        ("64:ff9b:1::1", False),
        ("fec0::1", False),
        ("::ffff:169.254.169.254", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert ssrf.is_public(ipaddress.ip_address(address)) is public
