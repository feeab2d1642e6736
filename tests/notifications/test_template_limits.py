"""An organization's own templates render in the sandbox within a time and a size limit: a
template that would hold the worker or its memory is refused, and says why."""

from __future__ import annotations

import time

import pytest

from slotease.notifications.templates import MAX_RENDERED_CHARS, TemplateRefused, Templates

CONTEXT = {"recipient_name": "Ann", "organization": "Clinic"}
SLOW = "took longer than 0.2 s"
BIG = f"more than {MAX_RENDERED_CHARS} characters"

REFUSED = {
    "nested_loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        SLOW,
    ),
    "loops_over_built_lists": (
        "{% set r = range(9999)|list %}"
        "{% for i in r %}{% for j in r %}{% for k in r %}{% endfor %}{% endfor %}{% endfor %}",
        SLOW,
    ),
    "macro_fan_out": (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        SLOW,
    ),
    "endless_recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "too deeply"),
    "megabytes_out": ("{% for i in range(99999) %}{{ 'abcdefghij' }}{% endfor %}", BIG),
    "repeated_string": ("{{ 'x' * 1000000000 }}", BIG),
    "repeated_list": ("{{ ([1] * 100000) * 100000 }}", BIG),
    "wide_filter": ("{{ 'x'|center(1000000000) }}", BIG),
    "wide_method": ("{{ 'x'.ljust(1000000000) }}", BIG),
    "wide_percent": ("{{ '%0999999999d' % 1 }}", BIG),
    "wide_format": ("{{ '{:>999999999}'.format(1) }}", BIG),
    "huge_join": ("{{ range(99999)|join('x' * 90000) }}", BIG),
    "huge_replace": ("{{ ('x' * 99999).replace('x', 'y' * 99999) }}", BIG),
    "huge_power": ("{{ ((10 ** 64) ** 64) ** 64 }}", "too high a power"),
}


def _render(templates: Templates, part: str, source: str) -> str:
    overrides = {"booking_confirmed": {"subject": "Booked", "text": "Booked.", part: source}}
    rendered = templates.render("booking_confirmed", "en", CONTEXT, overrides)
    return rendered.html if part == "html" else rendered.text


@pytest.mark.parametrize("part", ["text", "html"])
@pytest.mark.parametrize("case", REFUSED)
def test_a_template_over_the_limits_is_refused(case: str, part: str) -> None:
    source, reason = REFUSED[case]
    templates = Templates(render_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(TemplateRefused, match=reason):
        _render(templates, part, source)
    assert time.monotonic() - started < 1.5


def test_ordinary_templates_render_as_before() -> None:
    templates = Templates(render_seconds=0.2)
    text = _render(
        templates,
        "text",
        "Hello {{ recipient_name }}, you are {{ 3|ordinal }}: "
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ '%05d' % 42 }} "
        "{{ ('word ' * 3)|replace('word', 'a word')|trim }} {{ 1234567 % 1000 }}"
        " {{ 1234567|string|length }}",
    )
    assert text == "Hello Ann, you are 3rd: 012 00042 a word a word a word 567 7"
    assert _render(templates, "html", "<p>{{ recipient_name }}</p>") == "<p>Ann</p>"


def test_the_sandbox_still_holds() -> None:
    templates = Templates()
    with pytest.raises(Exception, match=r"unsafe|namespace"):
        _render(templates, "text", "{{ ''.__class__.__mro__ }}{% set ns = namespace() %}")
