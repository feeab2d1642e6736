"""Message templates: Jinja2 files per locale (English is the fallback), which an organization
may override in `organizations.settings -> 'templates'`.

An override is `{"<template>": {"subject": ..., "text": ..., "html": ...}}`, optionally per
locale (`{"<template>": {"fr": {...}}}`). Overrides are written by organization admins, so
they render in Jinja2's sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).parent / "templates"
FALLBACK_LOCALE = "en"
# Sent by the system alone, with a link it makes: nobody may send them with links of their own.
SYSTEM_TEMPLATES = frozenset({"invitation"})


def ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Templates:
    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        # Plain-text parts (subjects, text bodies, SMS): nothing to escape; HTML goes through
        # the autoescaping layout or sandbox below.
        self.files = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=False,  # noqa: S701
            keep_trailing_newline=False,
        )
        self.layout = Environment(loader=FileSystemLoader(directory), autoescape=True)
        self.sandbox = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.html_sandbox = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        for env in (self.files, self.sandbox, self.html_sandbox):
            env.filters["ordinal"] = ordinal

    def exists(self, name: str) -> bool:
        """Whether `name` is a template people may send."""
        return (
            name not in SYSTEM_TEMPLATES
            and (TEMPLATE_DIR / FALLBACK_LOCALE / f"{name}.txt").exists()
        )

    def render(
        self,
        name: str,
        locale: str | None,
        context: dict[str, Any],
        overrides: dict[str, Any] | None = None,
    ) -> Rendered:
        locales = _candidates(locale)
        override = _override(overrides or {}, name, locales)
        subject = self._part(name, "subject.txt", "subject", locales, override, context).strip()
        text = self._part(name, "txt", "text", locales, override, context).strip()
        if "html" in override:
            html = self.html_sandbox.from_string(override["html"]).render(context)
        else:
            html = self.wrap(subject, text, locales[0])
        return Rendered(subject=subject, text=text, html=html)

    def wrap(self, subject: str, text: str, locale: str = FALLBACK_LOCALE) -> str:
        """The HTML form of a plain-text message."""
        return self.layout.get_template("layout.html").render(
            subject=subject, text=text, locale=locale
        )

    def _part(
        self,
        name: str,
        suffix: str,
        key: str,
        locales: list[str],
        override: dict[str, str],
        context: dict[str, Any],
    ) -> str:
        if key in override:
            return self.sandbox.from_string(override[key]).render(context)
        for candidate in locales:
            try:
                return self.files.get_template(f"{candidate}/{name}.{suffix}").render(context)
            except TemplateNotFound:
                continue
        raise LookupError(f"no template {name!r}")


def _candidates(locale: str | None) -> list[str]:
    """ "pt-BR" → ["pt-BR", "pt", "en"]."""
    found: list[str] = []
    if locale:
        found.append(locale)
        base = locale.replace("_", "-").split("-")[0]
        if base != locale:
            found.append(base)
    if FALLBACK_LOCALE not in found:
        found.append(FALLBACK_LOCALE)
    return found


def _override(overrides: dict[str, Any], name: str, locales: list[str]) -> dict[str, str]:
    entry = overrides.get(name)
    if not isinstance(entry, dict):
        return {}
    for candidate in locales:
        localized = entry.get(candidate)
        if isinstance(localized, dict):
            return {k: v for k, v in localized.items() if isinstance(v, str)}
    return {k: v for k, v in entry.items() if isinstance(v, str)}
