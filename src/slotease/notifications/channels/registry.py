"""Which provider serves each channel, chosen by the settings."""

from __future__ import annotations

import httpx

from slotease.config import Settings
from slotease.notifications.channels.base import Channel, Provider
from slotease.notifications.channels.fcm import FcmProvider
from slotease.notifications.channels.sendgrid import SendGridProvider
from slotease.notifications.channels.smtp import SmtpProvider
from slotease.notifications.channels.twilio import TwilioProvider


def build_providers(settings: Settings, client: httpx.AsyncClient) -> dict[Channel, Provider]:
    providers: dict[Channel, Provider] = {}
    if settings.sendgrid_api_key:
        providers["email"] = SendGridProvider(
            client,
            api_key=settings.sendgrid_api_key,
            base_url=settings.sendgrid_base_url,
            sender=settings.mail_from,
        )
    elif settings.smtp_host:
        providers["email"] = SmtpProvider(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.mail_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.provider_timeout_seconds,
        )
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from:
        providers["sms"] = TwilioProvider(
            client,
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            sender=settings.twilio_from,
            base_url=settings.twilio_base_url,
        )
    if settings.fcm_project_id and settings.fcm_access_token:
        providers["push"] = FcmProvider(
            client,
            project_id=settings.fcm_project_id,
            access_token=settings.fcm_access_token,
            base_url=settings.fcm_base_url,
        )
    return providers


def not_configured_reason(channel: Channel) -> str:
    names = {
        "email": "SLOTEASE_SMTP_HOST or SLOTEASE_SENDGRID_API_KEY",
        "sms": "SLOTEASE_TWILIO_ACCOUNT_SID, SLOTEASE_TWILIO_AUTH_TOKEN and SLOTEASE_TWILIO_FROM",
        "push": "SLOTEASE_FCM_PROJECT_ID and SLOTEASE_FCM_ACCESS_TOKEN",
        "in_app": "",
    }
    return f"no {channel} provider is configured (set {names[channel]})"
