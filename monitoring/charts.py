"""Runs per hour (last 24 hours) and per 6 hours (last 7 days) by outcome, as stacked bars.

One query counts the finished runs of the last 7 days per hour and outcome; both charts are
drawn from it. The template draws the bars as SVG from the geometry computed here, with a
title, a description and a table of the same figures for those who cannot see the chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.formats import date_format

from syncjobs.models import RunStatus, SyncRun

OUTCOMES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)
# Bootstrap's success, warning and danger.
COLORS = {RunStatus.SUCCEEDED: "#198754", RunStatus.PARTIAL: "#ffc107", RunStatus.FAILED: "#dc3545"}
# Drawing area of the SVG (viewBox units); the image scales to the page's width.
# The text is large for the drawing: on a phone the image is drawn at half its size.
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, FONT = 720, 220, 44, 28, 12, 18
TICKS = 4  # labels on the time axis


@dataclass
class Segment:
    outcome: RunStatus
    n: int
    y: float = 0.0
    height: float = 0.0

    @property
    def label(self) -> str:
        return str(self.outcome.label)

    @property
    def color(self) -> str:
        return COLORS[self.outcome]


@dataclass
class Bar:
    start: datetime
    label: str  # on the axis
    full_label: str  # in the table
    counts: dict[str, int]
    x: float = 0.0
    width: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    tick: bool = False  # label it on the axis

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def cells(self) -> list[int]:
        return [self.counts[o] for o in OUTCOMES]


@dataclass
class Chart:
    bars: list[Bar]
    top: int  # the y axis' maximum
    totals: dict[str, int]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM
    top_y: int = TOP
    font: int = FONT

    @property
    def outcomes(self) -> list[tuple[str, Any, int, str]]:
        """(value, label, total, color) of each outcome: the legend."""
        return [(o.value, o.label, self.totals[o], COLORS[o]) for o in OUTCOMES]

    @property
    def middle(self) -> float:
        return (self.baseline + self.top_y) / 2


def hourly_counts(runs: QuerySet[SyncRun], since: datetime) -> dict[tuple[datetime, str], int]:
    """{(hour, outcome): runs} of the runs finished since ``since``: one query."""
    rows = (
        runs.filter(finished_at__gte=since, status__in=OUTCOMES)
        .annotate(hour=TruncHour("finished_at", tzinfo=UTC))
        .order_by()
        .values_list("hour", "status")
        .annotate(n=Count("pk"))
    )
    return {(hour, status): n for hour, status, n in rows}


def chart(counts: dict[tuple[datetime, str], int], start: datetime, hours: int, n_bars: int, tick: str) -> Chart:
    """Bars of ``hours`` hours each from ``start``, summed from the hourly counts; ``tick``: the
    date format of the axis' labels."""
    bars = []
    for i in range(n_bars):
        begin = start + timedelta(hours=hours * i)
        summed = {o: sum(counts.get((begin + timedelta(hours=h), o), 0) for h in range(hours)) for o in OUTCOMES}
        local = timezone.localtime(begin)
        bars.append(Bar(begin, date_format(local, tick), date_format(local, "SHORT_DATETIME_FORMAT"), summed))
    return _layout(bars)


def _layout(bars: list[Bar]) -> Chart:
    top = _nice_top(max((bar.total for bar in bars), default=0))
    span = WIDTH - LEFT
    slot = span / len(bars)
    scale = (HEIGHT - BOTTOM - TOP) / top
    every = max(1, len(bars) // TICKS)
    for i, bar in enumerate(bars):
        bar.x, bar.width = LEFT + slot * i + slot * 0.1, slot * 0.8
        bar.tick = i % every == 0
        y = float(HEIGHT - BOTTOM)
        for outcome in OUTCOMES:
            n = bar.counts[outcome]
            if n:
                height = n * scale
                y -= height
                bar.segments.append(Segment(outcome, n, round(y, 2), round(height, 2)))
        bar.x, bar.width = round(bar.x, 2), round(bar.width, 2)
    totals = {o: sum(bar.counts[o] for bar in bars) for o in OUTCOMES}
    return Chart(bars, top, totals)


def _nice_top(value: int) -> int:
    """The y axis' maximum: 1, 2 or 5 times a power of ten, at least the value (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def run_charts(runs: QuerySet[SyncRun], now: datetime) -> tuple[Chart, Chart]:
    """The last 24 hours per hour and the last 7 days per 6 hours (hours and days in UTC steps)."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    day_start = hour - timedelta(hours=hour.hour % 6) - timedelta(hours=6 * 27)
    counts = hourly_counts(runs, day_start)
    return (
        chart(counts, hour - timedelta(hours=23), 1, 24, "H:i"),
        chart(counts, day_start, 6, 28, "D H:i"),
    )
