"""Message templates: Jinja2 files per locale (English is the fallback), which an organization
may override in `organizations.settings -> 'templates'`.

An override is `{"<template>": {"subject": ..., "text": ..., "html": ...}}`, optionally per
locale (`{"<template>": {"fr": {...}}}`). Overrides are written by organization admins, so
they render in Jinja2's sandbox, within a time and a size limit: the sandbox keeps a template
from reaching what it must not, the limits keep it from holding a worker (nested loops) or
its memory (`"x" * 10**9`, `center(10**9)`)."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, nodes
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).parent / "templates"
FALLBACK_LOCALE = "en"
# Sent by the system alone, with a link it makes: nobody may send them with links of their own.
SYSTEM_TEMPLATES = frozenset({"invitation", "password_reset", "verify_email"})
# An override renders within this long, and writes (or builds) at most this many characters
# or items: a message is a few kilobytes.
RENDER_SECONDS = 1.0
MAX_RENDERED_CHARS = 100_000


class TemplateRefused(ValueError):
    """An organization's template ran over the time or size limit; the message says which."""


def ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


class _Budget:
    """The deadline of the render under way; one sandbox renders one template at a time (the
    worker renders synchronously)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = float("inf")

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"The template took longer than {self.seconds:g} s to render.")


# What one call may build from its inputs (a join, a replace): their sizes multiplied.
MAX_BUILT_ITEMS = MAX_RENDERED_CHARS * 100
_SIZED = (str, bytes, list, tuple, dict, set, range)
_NUMBER = re.compile(r"\d+")


def _too_big(value: Any) -> bool:
    # An int argument is a width or a count (center, indent, ljust, "%*s").
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > MAX_RENDERED_CHARS
    return isinstance(value, _SIZED) and len(value) > MAX_RENDERED_CHARS


def _refuse_big(subject: Any, arguments: Iterable[Any]) -> None:
    """Refuse a call on `subject` (a filter's value, a method's object) whose arguments, or
    the product of its size and theirs, exceed the limits, before it allocates anything."""
    arguments = list(arguments)
    size = len(subject) if isinstance(subject, _SIZED) else 1
    widths = (
        [int(n) for n in _NUMBER.findall(subject)]  # "%0999999d", "{:>999999}"
        if isinstance(subject, str) and ("%" in subject or "{" in subject)
        else []
    )
    if (
        (isinstance(subject, _SIZED) and _too_big(subject))
        or any(_too_big(a) for a in arguments)
        or any(w > MAX_RENDERED_CHARS for w in widths)
        or any(isinstance(a, _SIZED) and size * len(a) > MAX_BUILT_ITEMS for a in arguments)
    ):
        raise TemplateRefused(
            f"The template would write more than {MAX_RENDERED_CHARS} characters."
        )


class _LimitedSandbox(SandboxedEnvironment):
    """The sandbox, with every loop, call, filter, repetition and power checked against the
    budget; and no `namespace`, whose attributes would let a loop double a string at each
    turn without any call to check."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, budget: _Budget, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget
        del self.globals["namespace"]
        self.globals["_checked_loop"] = self._checked_loop
        self.filters = {name: self._checked_filter(f) for name, f in self.filters.items()}

    def _checked_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.budget.check()
            yield item

    def _checked_filter(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self.budget.check()
            # Filters that take the environment or a context have it first, the value next.
            values = [a for a in args if not isinstance(a, Environment | Context | EvalContext)]
            _refuse_big(values[0] if values else None, [*values[1:], *kwargs.values()])
            return function(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.budget.check()
        # The sandbox hands str.format over wrapped; the string is the bound method's object.
        method = getattr(__obj, "__wrapped__", __obj)
        _refuse_big(getattr(method, "__self__", None), [*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        self.budget.check()
        if operator_ == "**" and (
            (isinstance(right, int) and abs(right) > 64)
            or (isinstance(left, int) and left.bit_length() > 256)
        ):
            raise TemplateRefused("The template raises a number to too high a power.")
        if operator_ == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                    _refuse_big(None, [len(sequence) * count])
        if operator_ == "%" and isinstance(left, str):
            _refuse_big(left, right if isinstance(right, tuple) else [right])
        return super().call_binop(context, operator_, left, right)

    def render_limited(self, source: str, context: dict[str, Any]) -> str:
        """`source` rendered within the budget, its output capped as it streams."""
        tree = self.parse(source)
        # Loops over lists the template already built make no call the budget could see.
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(
                nodes.Name("_checked_loop", "load"), [loop.iter], [], None, None
            ).set_lineno(loop.lineno)
        tree.set_environment(self)
        self.budget.start()
        written: list[str] = []
        size = 0
        try:
            for chunk in self.from_string(tree).generate(context):
                self.budget.check()
                size += len(chunk)
                _refuse_big(None, [size])
                written.append(chunk)
        except RecursionError:
            raise TemplateRefused("The template calls its macros too deeply.") from None
        return "".join(written)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Templates:
    def __init__(
        self, directory: Path = TEMPLATE_DIR, *, render_seconds: float = RENDER_SECONDS
    ) -> None:
        # Plain-text parts (subjects, text bodies, SMS): nothing to escape; HTML goes through
        # the autoescaping layout or sandbox below.
        self.files = Environment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=False,  # noqa: S701
            keep_trailing_newline=False,
        )
        self.layout = Environment(loader=FileSystemLoader(directory), autoescape=True)
        self.files.filters["ordinal"] = ordinal
        budget = _Budget(render_seconds)
        self.sandbox, self.html_sandbox = (
            _LimitedSandbox(budget, undefined=StrictUndefined, autoescape=escape)
            for escape in (False, True)
        )
        for env in (self.sandbox, self.html_sandbox):
            env.filters["ordinal"] = env._checked_filter(ordinal)

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
            html = self.html_sandbox.render_limited(override["html"], context)
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
            return self.sandbox.render_limited(override[key], context)
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
