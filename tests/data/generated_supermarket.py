"""A small generated supermarket read back into plain Python (the `supermarket` fixture is in conftest.py)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from omnix_recs.data.catalog import Catalog, build_catalog

SMALL = dict(customers=700, products=1200, days=365, seed=7)


@dataclass
class Supermarket:
    directory: Path
    summary: dict
    catalog: Catalog  # the catalogue the generator built (same arguments → same catalogue)
    households: dict[int, dict[str, str]]
    orders: list[dict[str, str]]  # orders.csv rows, file order
    lines: dict[int, list[tuple[int, int, int]]]  # order id → [(product id, cart position, reordered)]
    order_day: dict[int, int]  # order id → simulated day (0 = first day)
    first_date: date

    def date_of(self, order_id: int) -> date:
        return self.first_date + timedelta(days=self.order_day[order_id])

    def purchases(self) -> list[tuple[int, int, int]]:
        """(user, product, day) for every order line."""
        user_of = {int(o["order_id"]): int(o["user_id"]) for o in self.orders}
        return [(user_of[oid], p, self.order_day[oid]) for oid, rows in self.lines.items() for p, _, _ in rows]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_supermarket(directory: Path, summary: dict, days: int) -> Supermarket:
    households = {int(r["user_id"]): r for r in read_rows(directory / "households.csv")}
    orders = read_rows(directory / "orders.csv")
    lines: dict[int, list[tuple[int, int, int]]] = {}
    for name in ("order_products__prior.csv", "order_products__train.csv"):
        for r in read_rows(directory / name):
            lines.setdefault(int(r["order_id"]), []).append(
                (int(r["product_id"]), int(r["add_to_cart_order"]), int(r["reordered"]))
            )
    # Rebuild days backwards from each customer's last order, as the importer does.
    by_user: dict[int, list[dict[str, str]]] = {}
    for o in orders:
        by_user.setdefault(int(o["user_id"]), []).append(o)
    order_day = {}
    for user, user_orders in by_user.items():
        day = days - 1 - int(households[user]["days_since_last_order"])
        for o in sorted(user_orders, key=lambda o: int(o["order_number"]), reverse=True):
            order_day[int(o["order_id"])] = day
            if o["days_since_prior_order"]:
                day -= int(float(o["days_since_prior_order"]))
    return Supermarket(
        directory=directory,
        summary=summary,
        catalog=build_catalog(summary["products"], days, SMALL["seed"]),
        households=households,
        orders=orders,
        lines=lines,
        order_day=order_day,
        first_date=date.fromisoformat(summary["first_date"]),
    )
