"""The dashboard figures of one user, computed from the read tables in one snapshot.

* shows by month and status, per currency: how many, their fees and their nets. Amounts in
  different currencies are never added together: there are no exchange rates anywhere in the
  system (see ``shows.py``), so each currency gets its own line;
* workout volume per ISO week (Monday to Sunday): workouts, sets, reps and kilograms;
* the low-stock products, the ones that run out first on top (``days_left`` as of each
  product's last event, see ``inventory.py``; unknown, when nothing sold, last).

Sums are exact decimals, rounded to cents once at the end like the projectors' figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, localcontext
from typing import Any
from uuid import UUID

import msgspec

from event_store import Sql

from .rows import DECIMAL, money


class ShowFigures(msgspec.Struct, frozen=True):
    month: str
    """``YYYY-MM`` of the shows' dates."""
    status: str
    currency: str
    shows: int
    fee_total: str
    net_total: str


class WeekFigures(msgspec.Struct, frozen=True):
    week: str
    """ISO week, ``2026-W48``."""
    starts_on: date
    workouts: int
    sets: int
    reps: int
    volume_kg: str


class LowStock(msgspec.Struct, frozen=True):
    id: UUID
    sku: str
    name: str
    quantity: int
    reorder_point: int
    avg_daily_sales: str
    days_left: int | None


class Dashboard(msgspec.Struct, frozen=True):
    shows: list[ShowFigures]
    workouts: list[WeekFigures]
    low_stock: list[LowStock]


class _Show(msgspec.Struct):
    date: str
    status: str
    currency: str
    fee: str
    net: str


class _Workout(msgspec.Struct):
    date: str
    total_sets: int
    total_reps: int
    volume_kg: str


_shows = msgspec.json.Decoder(_Show)
_workouts = msgspec.json.Decoder(_Workout)
_products = msgspec.json.Decoder(LowStock)


def dashboard(sql: Sql, owner: UUID, start: str | None = None, end: str | None = None) -> Dashboard:
    """Figures of ``owner``'s live rows; shows and workouts dated from ``start`` to ``end``."""
    shows = [_shows.decode(body) for body in _bodies(sql, "shows", owner, start, end)]
    workouts = [_workouts.decode(body) for body in _bodies(sql, "workouts", owner, start, end)]
    products = [
        _products.decode(body)
        for (body,) in sql.fetchall(
            "SELECT body FROM inventory WHERE owner = ? AND deleted_at IS NULL AND low_stock = ?",
            [owner, True],
        )
    ]
    return Dashboard(show_figures(shows), week_figures(workouts), low_stock_first(products))


def _bodies(sql: Sql, table: str, owner: UUID, start: str | None, end: str | None) -> list[str]:
    where, params = ["owner = ?", "deleted_at IS NULL"], [owner]
    if start is not None:
        where.append("date >= ?")
        params.append(start)
    if end is not None:
        where.append("date <= ?")
        params.append(end)
    return [
        body
        for (body,) in sql.fetchall(f"SELECT body FROM {table} WHERE {' AND '.join(where)}", params)
    ]


def show_figures(shows: Iterable[_Show]) -> list[ShowFigures]:
    groups: dict[tuple[str, str, str], list[Any]] = {}
    with localcontext(DECIMAL):
        for show in shows:
            group = groups.setdefault((show.date[:7], show.status, show.currency), [0, 0, 0])
            group[0] += 1
            group[1] += Decimal(show.fee)
            group[2] += Decimal(show.net)
        return [
            ShowFigures(month, status, currency, count, money(fees), money(nets))
            for (month, status, currency), (count, fees, nets) in sorted(groups.items())
        ]


def week_figures(workouts: Iterable[_Workout]) -> list[WeekFigures]:
    groups: dict[date, list[Any]] = {}
    with localcontext(DECIMAL):
        for workout in workouts:
            day = date.fromisoformat(workout.date)
            monday = day - timedelta(days=day.weekday())
            group = groups.setdefault(monday, [0, 0, 0, 0])
            group[0] += 1
            group[1] += workout.total_sets
            group[2] += workout.total_reps
            group[3] += Decimal(workout.volume_kg)
        return [
            WeekFigures(_iso_week(monday), monday, count, sets, reps, money(volume))
            for monday, (count, sets, reps, volume) in sorted(groups.items())
        ]


def low_stock_first(products: Iterable[LowStock]) -> list[LowStock]:
    return sorted(
        products,
        key=lambda p: (p.days_left is None, p.days_left or 0, p.sku, p.id),
    )


def _iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"
