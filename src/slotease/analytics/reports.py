"""Rendering of report rows as CSV, JSON or PDF (a table and a chart of the daily totals)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

CONTENT_TYPES = {"csv": "text/csv", "json": "application/json", "pdf": "application/pdf"}
# The column each kind of report charts per day, and how days add up.
CHARTED = {"appointments": "total", "queues": "tickets", "feedback": "rating"}
PDF_ROWS = 500


# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and CR, may
# strip them and read what follows as one): text from customers, such as feedback comments,
# could run commands or leak data on the reader's machine.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as written: text that could start a formula gets a leading
    single quote (OWASP's advice); numbers stay numbers, negative ones included."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    text = _text(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def render(
    kind: str, report_format: str, title: str, columns: list[str], rows: list[dict[str, Any]]
) -> tuple[bytes, str]:
    """The report's bytes and their content type."""
    if report_format == "csv":
        return _csv(columns, rows), CONTENT_TYPES["csv"]
    if report_format == "json":
        body = json.dumps({"title": title, "rows": rows}, default=str, ensure_ascii=False)
        return body.encode(), CONTENT_TYPES["json"]
    return _pdf(kind, title, rows), CONTENT_TYPES["pdf"]


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    # The header comes from the query, so that a period without data still names its columns.
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode()


def daily_totals(kind: str, rows: list[dict[str, Any]]) -> list[tuple[date, float]]:
    """The charted figure per day: a sum, or for feedback the number of ratings."""
    totals: dict[date, float] = defaultdict(float)
    column = CHARTED[kind]
    for row in rows:
        totals[row["day"]] += 1 if kind == "feedback" else float(row[column] or 0)
    return sorted(totals.items())


def _chart(kind: str, rows: list[dict[str, Any]]) -> Drawing:
    totals = daily_totals(kind, rows)
    drawing = Drawing(480, 200)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 420, 150
    chart.data = [[value for _, value in totals] or [0]]
    chart.categoryAxis.categoryNames = [day.strftime("%m-%d") for day, _ in totals] or [""]
    chart.categoryAxis.labels.angle = 90 if len(totals) > 14 else 0
    chart.categoryAxis.labels.fontSize = 6
    chart.valueAxis.valueMin = 0
    chart.bars[0].fillColor = colors.HexColor("#2f6fde")
    drawing.add(chart)
    return drawing


def _pdf(kind: str, title: str, rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    styles = getSampleStyleSheet()
    label = "ratings" if kind == "feedback" else CHARTED[kind]
    story: list[Any] = [
        Paragraph(title, styles["Title"]),
        Paragraph(f"Daily {label}", styles["Heading2"]),
        _chart(kind, rows),
        Spacer(1, 12),
    ]
    if rows:
        header = list(rows[0])
        body = [[_text(row[c])[:60] for c in header] for row in rows[:PDF_ROWS]]
        table = Table([header, *body], repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("FONTSIZE", (0, 0), (-1, -1), 7),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eefc")),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ]
            )
        )
        story.append(table)
        if len(rows) > PDF_ROWS:
            story.append(Paragraph(f"First {PDF_ROWS} of {len(rows)} rows.", styles["Normal"]))
    else:
        story.append(Paragraph("No data in this period.", styles["Normal"]))
    SimpleDocTemplate(out, pagesize=A4, title=title).build(story)
    return out.getvalue()
