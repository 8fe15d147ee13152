"""The deterministic synthetic feed generator: every feed of the contract, with known defects.

`generate` writes `weeks` weeks of deliveries of every feed of the registry (the seven file feeds
of feeds.md; the pulled feeds of sources.md in `pulled_feeds.py`) into `landing/<feed>/` and
returns a manifest that says, file by file, what ingestion must do with it: load it (and
quarantine exactly `row_defects` rows, by rule), reject it whole, or skip it as a duplicate.
Same arguments, same bytes: every random choice comes from `random.Random` streams seeded from
`seed`, and nothing reads the clock (XLSX properties and gzip headers carry fixed times).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import xlsxwriter

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.sample_data import catalog as C
from fe_platform.sample_data import pulled_feeds
from fe_platform.sample_data.defects import DefectPlanner, inject_extra_rows, inject_in_place, norm
from fe_platform.sample_data.large_file import write_large_iqvia
from fe_platform.sample_data.world import World, at, bad_npi, bad_sfdc_id, corrupt_npi, ts, weighted

__all__ = ["generate", "write_large_iqvia", "RULES", "RULE_EXCEPTIONS"]

Progress = Callable[[str, int, int], None]
FILE_FEEDS = ("product_master", "sfdc_territory", "sfdc_account", "fx_rates", "sap_billing", "sfdc_call",
              "iqvia_rx")
FEED_ORDER = FILE_FEEDS + pulled_feeds.FEEDS

# The row-level rules the generator breaks, per feed, in the order they are spread over files.
RULES: dict[str, tuple[str, ...]] = {
    "iqvia_rx": (
        "prescriber_id_required", "prescriber_id_format", "npi_check_digit", "ndc11_required", "ndc11_format",
        "week_ending_required", "week_ending_type", "week_ending_friday", "not_future", "week_in_window",
        "payer_type_allowed", "channel_allowed", "nrx_type", "nrx_range", "nbrx_le_nrx", "trx_type",
        "trx_range", "trx_ge_nrx", "nbrx_type", "nbrx_range", "nqty_type", "nqty_range", "nqty_le_tqty",
        "tqty_type", "tqty_range", "duplicate_key"),
    "sap_billing": (
        "billing_document_required", "billing_document_format", "billing_item_required", "billing_item_format",
        "billing_type_allowed", "billing_date_required", "billing_date_type", "not_future",
        "sales_org_required", "sales_org_format", "sold_to_required", "sold_to_format", "ship_to_required",
        "ship_to_format", "material_required", "material_format", "quantity_type", "sign_by_billing_type",
        "sales_unit_required", "sales_unit_format", "net_value_type", "net_value_format", "currency_code",
        "duplicate_key"),
    "sfdc_account": (
        "account_id_required", "sfdc_id_format", "npi_check_digit", "first_name_required",
        "last_name_required", "specialty_allowed", "email_format", "state_allowed", "zip_format",
        "territory_id_required", "pdrp_opt_out_type", "is_active_type", "last_modified_type", "not_future",
        "duplicate_key"),
    "sfdc_call": (
        "call_id_required", "sfdc_id_format", "account_id_required", "rep_id_required", "territory_id_required",
        "call_datetime_required", "call_datetime_type", "call_channel_allowed", "call_type_allowed",
        "products_detailed_format", "products_detailed_allowed", "call_status_allowed", "last_modified_type",
        "not_future", "submitted_not_after_modified", "duplicate_key"),
    "sfdc_territory": (
        "territory_id_required", "territory_name_required", "district_id_required", "district_name_required",
        "region_id_required", "region_name_required", "territory_id_unique"),
    "product_master": (
        "ndc11_required", "ndc11_format", "brand_code_required", "brand_code_format", "brand_name_required",
        "molecule_required", "market_allowed", "manufacturer_required", "is_own_brand_type",
        "units_per_pack_type", "units_per_pack_range", "ndc11_unique"),
    # rate_date / base_currency rules break every rate of a file: those go in extra weekend files.
    "fx_rates": ("quote_currency_required", "quote_currency_format", "rate_required", "rate_type", "rate_range"),
}
FX_FILE_RULES = ("rate_date_required", "rate_date_type", "not_future", "base_currency_required",
                 "base_currency_format")
# Rules of feeds.py that no single-defect row can break, with why.
RULE_EXCEPTIONS = {
    # An ID that breaks the [0-9A-Za-z]{18} pattern always breaks sfdc_id_format too: only the checksum
    # rule can be broken alone, so the pattern rules are never injected.
    ("sfdc_account", "account_id_format"), ("sfdc_call", "call_id_format"), ("sfdc_call", "account_id_format"),
    # A JSON object cannot carry the same currency twice once parsed: fx keys are unique by construction.
    ("fx_rates", "duplicate_key"),
    *pulled_feeds.RULE_EXCEPTIONS,
}
RULES.update(pulled_feeds.RULES)
FX_SPARE = ("PLN", "CZK", "HUF", "RON", "ISK", "TRY", "MXN", "ZAR", "INR", "KRW", "SGD", "HKD", "NZD", "THB")
FX_BAD_CODES = ("US$", "usd", "EURO", "U.S.", "gbp", "Yen", "C$")
UNKNOWN_BRAND = "ZYMOVA"


@dataclass
class Delivery:
    feed: str
    key: str
    data: bytes
    partition: str | None
    rows: int | None
    expected: str = "loaded"
    file_defect: str | None = None
    row_defects: dict = field(default_factory=dict)
    drift_columns: list = field(default_factory=list)
    quarantined: int | None = None  # rows to quarantine, when a row breaks more than one rule

    @property
    def rows_quarantined(self) -> int:
        return sum(self.row_defects.values()) if self.quarantined is None else self.quarantined

    def manifest(self) -> dict:
        return {"feed": self.feed, "key": self.key, "partition": self.partition, "rows": self.rows,
                "expected": self.expected, "file_defect": self.file_defect,
                "row_defects": dict(sorted(self.row_defects.items())), "rows_quarantined": self.rows_quarantined,
                "drift_columns": list(self.drift_columns)}


# encoders ------------------------------------------------------------------------------------------
def csv_bytes(header: list[str], rows: list[list], bom: bool = False, with_header: bool = True) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    if with_header:
        writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode() + buf.getvalue().encode()


def pipe_bytes(header: list[str], rows: list[list], delimiter: str = "|") -> bytes:
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def xlsx_bytes(header: list[str], rows: list[list], numeric: set[int], text_rows: set[int],
               created: datetime) -> bytes:
    buf = io.BytesIO()
    workbook = xlsxwriter.Workbook(buf, {"in_memory": True})
    workbook.set_properties({"title": "Billing extract", "author": "SAP SD", "created": created})
    sheet = workbook.add_worksheet("VBRP")
    for c, name in enumerate(header):
        sheet.write_string(0, c, name)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value == "":
                continue
            if c in numeric and r not in text_rows:
                try:
                    sheet.write_number(r, c, float(value))
                    continue
                except ValueError:
                    pass
            sheet.write_string(r, c, value)
    workbook.close()
    return buf.getvalue()


def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


def business_days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)
            if (start + timedelta(days=i)).weekday() < 5]


# the generator -------------------------------------------------------------------------------------
class Generator:
    def __init__(self, end_friday: date, weeks: int, hcps: int, seed: int, defect_rate: float,
                 pulled: tuple[str, ...] = ()):
        self.end = end_friday
        self.weeks = weeks
        self.rate = defect_rate
        self.hcps = hcps
        self.start = end_friday - timedelta(days=7 * weeks - 1)  # a Saturday
        self.fridays = [end_friday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
        self.bdays = business_days(self.start, end_friday)
        self.weekends = [self.start + timedelta(days=i) for i in range(7 * weeks)
                         if (self.start + timedelta(days=i)).weekday() >= 5]
        self.seed = seed
        self.world = World(self.rng("world"), hcps, self.start)
        self.deliveries: list[Delivery] = []
        self.referential: dict[str, dict[str, int]] = {}
        self.restatements: dict[str, dict[str, int]] = {}
        self.pulled = pulled
        self.planners = {feed: DefectPlanner(rules, self._n_files(feed), defect_rate, self.rng(f"plan-{feed}"))
                         for feed, rules in RULES.items() if feed in FILE_FEEDS}
        self.fx: dict[date, dict[str, float]] = {}
        self.counter = 0

    def rng(self, stream: str) -> random.Random:
        return random.Random(f"fe-platform-sample/{self.seed}/{stream}")

    def _n_files(self, feed: str) -> int:
        return self.weeks if feed in ("iqvia_rx", "sfdc_account", "sfdc_territory", "product_master") \
            else len(self.bdays)

    def fresh(self) -> int:
        self.counter += 1
        return self.counter

    def add(self, d: Delivery) -> None:
        self.deliveries.append(d)

    def note_referential(self, name: str, key: str, n: int) -> None:
        if n:
            self.referential.setdefault(name, {})[key] = n

    def note_restatement(self, name: str, key: str, n: int) -> None:
        """Rows of `key` that restate a key an earlier delivery held (not defects: the latest wins)."""
        if n:
            self.restatements.setdefault(name, {})[key] = n

    # ---------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.gen_fx()
        self.gen_weekly()  # snapshots, sap and calls move through time together with the world
        self.gen_iqvia()
        if self.rate > 0:
            self.gen_file_defects()
        # Last, on their own random streams: the file feeds' bytes do not depend on them.
        pulled_feeds.PulledFeeds(self, self.pulled).run()

    # fx --------------------------------------------------------------------------------------------
    def gen_fx(self) -> None:
        rng = self.rng("fx")
        rates = dict(C.FX_START)
        planner = self.planners["fx_rates"]
        for n, day in enumerate(self.bdays):
            rates = {c: v * (1 + rng.gauss(0, 0.003)) for c, v in rates.items()}
            clean = {c: round(v, 2 if c == "JPY" else 4) for c, v in rates.items()}
            self.fx[day] = clean
            body_rates: dict = dict(clean)
            counts: Counter = Counter()
            failed = []
            spare = [c for c in FX_SPARE]
            bad_codes = list(FX_BAD_CODES)
            rng.shuffle(spare)
            for rule in planner.plan(n, len(clean)):
                if rule == "quote_currency_required" and "" not in body_rates:
                    body_rates[""] = round(rng.uniform(1, 5), 4)
                elif rule == "quote_currency_format" and bad_codes:
                    body_rates[bad_codes.pop(rng.randrange(len(bad_codes)))] = clean["USD"]
                elif rule in ("rate_required", "rate_type", "rate_range") and spare:
                    value = {"rate_required": None, "rate_type": "4,2718",
                             "rate_range": rng.choice((0, -1.25))}[rule]
                    body_rates[spare.pop()] = value
                else:
                    failed.append(rule)
                    continue
                counts[rule] += 1
            planner.failed(failed)
            body = {"base": "EUR", "date": day.isoformat(), "rates": body_rates}
            self.add(Delivery("fx_rates", f"landing/fx_rates/FX_RATES_{ymd(day)}.json",
                              json.dumps(body, indent=2).encode(), day.isoformat(), len(body_rates),
                              row_defects=dict(counts)))

    # weekly cycle: snapshots, billing, calls ------------------------------------------------------
    def gen_weekly(self) -> None:
        world = self.world
        rng_world = self.rng("changes")
        self.sap_state = {"doc": 9_000_100_000, "rng": self.rng("sap"), "customers": self._customers()}
        self.call_state = {"rng": self.rng("calls"), "pending": {}, "submitted": []}
        sap_index = call_index = 0
        for w, friday in enumerate(self.fridays):
            monday = friday - timedelta(days=4)
            world.rng = rng_world
            world.change_territories()
            world.change_accounts(at(monday, 14), 0.01)
            for day in (monday + timedelta(days=i) for i in range(5)):
                self.gen_sap_day(sap_index, day)
                self.gen_calls_day(call_index, day)
                sap_index += 1
                call_index += 1
            self.gen_snapshots(w, friday)

    # snapshots ---------------------------------------------------------------------------------------
    def gen_snapshots(self, w: int, friday: date) -> None:
        world = self.world
        rng = self.rng(f"snapshot-{w}")
        part = friday.isoformat()
        # product master: the base packs, the packs listed so far, defective extra rows
        products = list(world.products) + [world.new_pack(i) for i in range(w + 1)]
        rows = [p.row() for p in products]
        counts = self._extra_defects("product_master", w, rows, rng, key_col=0, dup_rule="ndc11_unique",
                                     fresh_key=lambda: f"69999{self.fresh():06d}",
                                     prepare=_blank_material, mutators=product_mutators())
        header = FEEDS["product_master"].source_columns
        self.add(Delivery("product_master", f"landing/product_master/PRODUCT_MASTER_{ymd(friday)}.csv",
                          csv_bytes(header, rows), part, len(rows), row_defects=counts))
        # territories
        rows = [t.row() for t in world.territories]
        counts = self._extra_defects("sfdc_territory", w, rows, rng, key_col=0, dup_rule="territory_id_unique",
                                     fresh_key=lambda: f"T9{self.fresh():03d}", prepare=lambda r: r,
                                     mutators=required_mutators(FEEDS["sfdc_territory"]))
        self.add(Delivery("sfdc_territory", f"landing/sfdc_territory/SFDC_TERRITORY_{ymd(friday)}.csv",
                          csv_bytes(FEEDS["sfdc_territory"].source_columns, rows), part, len(rows),
                          row_defects=counts))
        # accounts
        rows = [a.row() for a in world.accounts]
        if self.rate > 0:
            if not hasattr(self, "orphan_account"):
                self.orphan_account = world.extra_account("T099", self.start)
            rows.insert(rng.randrange(len(rows) + 1), self.orphan_account.row())

        def prepare(row: list) -> list:
            row[1] = world.npi() if row[1] else ""
            return row

        counts = self._extra_defects("sfdc_account", w, rows, rng, key_col=0, dup_rule="duplicate_key",
                                     fresh_key=lambda: world.sfdc_id("001"), prepare=prepare,
                                     mutators=account_mutators(friday))
        key = f"landing/sfdc_account/SFDC_ACCOUNT_{ymd(friday)}.csv"
        if self.rate > 0:
            self.note_referential("sfdc_account.territory_id", key, 1)
        self.add(Delivery("sfdc_account", key, csv_bytes(FEEDS["sfdc_account"].source_columns, rows), part,
                          len(rows), row_defects=counts))

    def _extra_defects(self, feed: str, index: int, rows: list[list], rng: random.Random, key_col: int,
                       dup_rule: str, fresh_key, prepare, mutators) -> dict:
        planner = self.planners[feed]
        real = list(rows)
        plan = planner.plan(index, len(real))
        if not plan:
            return {}
        counts, failed = inject_extra_rows(rows, plan, mutators, key_col, fresh_key, dup_rule, prepare, rng)
        planner.failed(failed)
        return dict(counts)

    # SAP billing ---------------------------------------------------------------------------------------
    def _customers(self) -> dict[str, list[tuple[str, list[str]]]]:
        rng = self.rng("customers")
        out = {}
        n = 100_000
        for org, _, _ in C.SALES_ORGS:
            count = max(20, self.hcps // 25) if org == "US01" else rng.randint(5, 10)
            customers = []
            for _ in range(count):
                n += rng.randint(1, 40)
                ships = [f"{n:010d}"] + [f"{2_000_000 + rng.randint(0, 899_999):010d}"
                                         for _ in range(rng.randint(0, 2))]
                customers.append((f"{n:010d}", ships))
            out[org] = customers
        return out

    def gen_sap_day(self, index: int, day: date) -> None:
        st = self.sap_state
        rng: random.Random = st["rng"]
        own = [p for p in self.world.products if p.brand.is_own]
        min_units = {b.code: min(b.packs) for b in C.BRANDS}
        fx = self.fx[day]
        rows = []
        for _ in range(max(2, round(self.hcps / 40 * rng.uniform(0.7, 1.3)))):
            org, currency, _ = rng.choices(C.SALES_ORGS, [o[2] for o in C.SALES_ORGS])[0]
            btype = weighted(rng, (("F2", 82), ("L2", 3), ("G2", 6), ("RE", 6), ("S1", 3)))
            sold_to, ships = rng.choice(st["customers"][org])
            ship_to = rng.choice(ships)
            st["doc"] += rng.randint(1, 7)
            bill_date = day if rng.random() < 0.9 else day - timedelta(days=rng.randint(1, 3))
            rate = (fx.get(currency, 1.0) if currency != "EUR" else 1.0) / fx["USD"]
            for item in range(1, rng.randint(1, 2 if btype == "S1" else 4) + 1):
                product = rng.choice(own)
                packs = rng.randint(1, 24) if btype in ("F2", "S1") else rng.randint(1, 4)
                qty = 0 if btype in ("L2", "G2") and rng.random() < 0.6 else packs
                price = C.PACK_PRICE_USD[product.brand.molecule] * product.units_per_pack \
                    / min_units[product.brand.code]
                value = max(packs, 1) * price * rate * rng.uniform(0.82, 1.0)
                if btype in ("L2", "G2"):
                    value *= rng.uniform(0.02, 0.15)  # price adjustments
                sign = -1 if btype in ("G2", "RE", "S1") else 1
                net = round(sign * value, 2)
                rows.append([f"{st['doc']:010d}", f"{item * 10:06d}", btype, bill_date.isoformat(), org,
                             sold_to, ship_to, product.sap_material, f"{sign * qty:.3f}".replace("-0.000", "0.000"),
                             "EA" if product.units_per_pack == 1 else "BX", f"{net:.2f}", currency])
        header = list(FEEDS["sap_billing"].source_columns)
        planner = self.planners["sap_billing"]
        counts, failed, bad = inject_in_place(rows, planner.plan(index, len(rows)), sap_mutators(day), (0, 1),
                                              "duplicate_key", rng)
        planner.failed(failed)
        xlsx = day.weekday() == 2
        key = f"landing/sap_billing/SAP_BILLING_{ymd(day)}.{'xlsx' if xlsx else 'csv'}"
        if self.rate > 0 and rows:  # an unknown material: a referential warning, not a defect
            clean = [i for i in range(len(rows)) if i not in bad]
            if clean and rng.random() < 0.3:
                rows[rng.choice(clean)][7] = f"FE-{990000 + self.fresh()}"
                self.note_referential("sap_billing.material", key, 1)
        drift: list[str] = []
        if self.rate > 0 and index == 1:  # schema drift: one extra column the contract does not know
            drift = ["profit_center"]
            header = header + drift
            rows = [r + [f"PC{rng.randint(1000, 1099)}"] for r in rows]
        if xlsx:
            numeric = {header.index("quantity"), header.index("net_value")}
            text_rows = {r for r in range(1, len(rows) + 1) if rng.random() < 0.15}
            data = xlsx_bytes(header, rows, numeric, text_rows, at(day, 5, 30).replace(tzinfo=None))
        else:
            data = csv_bytes(header, rows, bom=day.weekday() == 0)
        self.add(Delivery("sap_billing", key, data, day.isoformat(), len(rows), row_defects=dict(counts),
                          drift_columns=drift))

    # calls ---------------------------------------------------------------------------------------------
    def gen_calls_day(self, index: int, day: date) -> None:
        st = self.call_state
        rng: random.Random = st["rng"]
        world = self.world
        prev = day - timedelta(days=3 if day.weekday() == 0 else 1)
        rows: list[list] = []
        in_file: set[str] = set()
        reps = {t.territory_id: t.rep_id for t in world.territories}
        # planned calls that were done or cancelled
        for call in st["pending"].pop(day, []):
            rep = reps.get(call[3]) or call[2]
            call[2] = rep
            if rng.random() < 0.82:
                call[8] = "SUBMITTED"
            else:
                call[8] = "CANCELLED"
            call[10] = ts(at(prev, rng.randint(8, 22), rng.randint(0, 59), rng.randint(0, 59)))
            rows.append(list(call))
            in_file.add(call[0])
            if call[8] == "SUBMITTED":
                st["submitted"].append(call)
        # submitted calls edited again (notes, channel)
        for call in rng.sample(st["submitted"], min(len(st["submitted"]), rng.randint(0, 4))):
            if call[0] in in_file:
                continue
            call[9] = rng.choice(C.NOTES)
            call[10] = ts(max(datetime.fromisoformat(call[10].replace("Z", "+00:00")),
                              at(prev, 23, rng.randint(0, 59))))
            rows.append(list(call))
            in_file.add(call[0])
        # new calls of the previous business day
        by_territory: dict[str, list] = {}
        for a in world.accounts:
            if a.is_active:
                by_territory.setdefault(a.territory_id, []).append(a)
        staffed = [t for t in world.territories if t.rep_id and by_territory.get(t.territory_id)]
        n_new = round(self.hcps * 0.06 * rng.uniform(0.8, 1.2)) if staffed else 0
        later = [d for d in self.bdays if d > day][:3]
        for _ in range(n_new):
            territory = rng.choice(staffed)
            account = rng.choice(by_territory[territory.territory_id])
            market = C.SPECIALTY_MARKET.get(account.specialty) or rng.choice(("FERTILITY", "ENDOCRINOLOGY"))
            call_type = weighted(rng, (("DETAIL", 55), ("DETAIL_WITH_SAMPLE", 25), ("GROUP_DETAIL", 5),
                                       ("CALL_ONLY", 15)))
            brands = world.own_brands[market]
            products = "" if call_type == "CALL_ONLY" else \
                ";".join(rng.sample(brands, rng.randint(1, min(3, len(brands)))))
            channel = weighted(rng, (("IN_PERSON", 60), ("VIRTUAL", 20), ("PHONE", 15), ("EMAIL", 5)))
            planned = later and rng.random() < 0.2
            when = at(prev, rng.randint(13, 21), rng.randint(0, 59), rng.randint(0, 59))
            if planned:
                modified = at(prev, rng.randint(7, 12), rng.randint(0, 59))
                status = "PLANNED"
            else:
                modified = min(when + timedelta(minutes=rng.randint(2, 150)), at(prev, 23, 59, 59))
                status = "SUBMITTED"
            call = [world.sfdc_id("a0C"), account.account_id, territory.rep_id, territory.territory_id, ts(when),
                    channel, call_type, products, status, rng.choice(C.NOTES), ts(modified)]
            rows.append(list(call))
            in_file.add(call[0])
            if planned:
                st["pending"].setdefault(rng.choice(later), []).append(call)
            else:
                st["submitted"].append(call)
        if len(st["submitted"]) > 5000:
            st["submitted"] = st["submitted"][-5000:]
        planner = self.planners["sfdc_call"]
        counts, failed, bad = inject_in_place(rows, planner.plan(index, len(rows)),
                                              call_mutators(day, world.brand_codes), (0,), "duplicate_key", rng)
        planner.failed(failed)
        key = f"landing/sfdc_call/SFDC_CALL_{ymd(day)}.csv"
        if self.rate > 0 and rows and index % 5 == 2:  # a call on an account the CRM snapshot lacks
            clean = [i for i in range(len(rows)) if i not in bad and rows[i][8] != "SUBMITTED"]
            if clean:
                rows[rng.choice(clean)][1] = world.sfdc_id("001")
                self.note_referential("sfdc_call.account_id", key, 1)
        self.add(Delivery("sfdc_call", key, csv_bytes(FEEDS["sfdc_call"].source_columns, rows),
                          day.isoformat(), len(rows), row_defects=dict(counts)))

    # IQVIA -----------------------------------------------------------------------------------------------
    def gen_iqvia(self) -> None:
        rng = self.rng("iqvia")
        world = self.world
        all_weeks = [self.fridays[0] - timedelta(weeks=12 - i) for i in range(12)] + self.fridays
        iso = [w.isoformat() for w in all_weeks]
        week_rows: list[list[list[str]]] = [[] for _ in all_weeks]
        rand, expo, randint = rng.random, rng.expovariate, rng.randint
        for p in world.prescribers:
            npi = p.npi or ("NULL" if int(p.prescriber_id) % 4 == 0 else "")
            for ndc, payer, channel, prob, scale, units in p.combos:
                for wi in range(len(all_weeks)):
                    if rand() >= prob:
                        continue
                    trx = 1 + int(expo(1 / scale))
                    nrx = randint(0, trx)
                    nbrx = randint(0, nrx)
                    tqty = trx * units * (1.5 if rand() < 0.2 else 1.0)
                    week_rows[wi].append([p.prescriber_id, npi, ndc, iso[wi], payer, channel, str(nrx), str(trx),
                                          str(nbrx), f"{tqty * nrx / trx:.1f}", f"{tqty:.1f}"])
        crm_npis = {a.npi for a in world.accounts if a.npi}
        header = [c.upper() for c in FEEDS["iqvia_rx"].source_columns]
        planner = self.planners["iqvia_rx"]
        for k, friday in enumerate(self.fridays):
            if k:
                self._restate(rng, [week_rows[w] for w in range(k, k + 12)])
            rows = [r for w in range(k, k + 13) for r in week_rows[w]]
            counts, failed, bad = inject_in_place(rows, planner.plan(k, len(rows)), iqvia_mutators(friday),
                                                  (0, 2, 3, 4, 5), "duplicate_key", rng)
            planner.failed(failed)
            gz = k % 3 == 2
            key = f"landing/iqvia_rx/RXDYN_WEEKLY_{ymd(friday)}.txt{'.gz' if gz else ''}"
            if self.rate > 0:  # NDCs the product master does not know: referential warnings
                clean = [i for i in range(len(rows)) if i not in bad]
                for i in rng.sample(clean, min(3, len(clean))):
                    rows[i] = list(rows[i])
                    rows[i][2] = f"68888{self.fresh():06d}"
                self.note_referential("iqvia_rx.ndc11", key, min(3, len(clean)))
            no_match = sum(1 for i, r in enumerate(rows) if i not in bad and norm(r[1]) and r[1] not in crm_npis)
            self.note_referential("iqvia_rx.npi", key, no_match)
            data = pipe_bytes(header, rows)
            if gz:
                data = gzip.compress(data, compresslevel=6, mtime=0)
            self.add(Delivery("iqvia_rx", key, data, friday.isoformat(), len(rows), row_defects=dict(counts)))
            if k == 0:
                self.iqvia_sample = (header, rows[:300])

    @staticmethod
    def _restate(rng: random.Random, weeks: list[list[list[str]]]) -> None:
        """IQVIA restates trailing weeks: about 2% of their rows get new counts (kept for later deliveries)."""
        for rows in weeks:
            for i in rng.sample(range(len(rows)), min(len(rows), max(1, len(rows) // 50))):
                row = rows[i]
                nrx, trx, tqty, nqty = int(row[6]), int(row[7]), float(row[10]), float(row[9])
                new = max(nrx, 1, trx + rng.choice((-1, 1, 1, 2)))
                if new == trx:
                    new += 1
                new_tqty = round(tqty * new / trx, 1)
                row[7], row[10], row[9] = str(new), f"{new_tqty:.1f}", f"{min(nqty, new_tqty):.1f}"

    # whole-file defects ----------------------------------------------------------------------------------
    def gen_file_defects(self) -> None:
        pools = {feed: list(self.weekends) for feed in FEEDS}
        # IQVIA partitions are Fridays: its broken files take the Fridays before the window, so each is
        # rejected for its own defect, not for a date that names no partition.
        pools["iqvia_rx"] = [self.fridays[0] - timedelta(weeks=i) for i in (1, 2, 3)]

        def day_for(feed: str) -> date | None:
            return pools[feed].pop(0) if pools[feed] else None

        def add(feed: str, name: str, data: bytes, rows: int | None, kind: str, day: date | None,
                expected: str = "rejected") -> None:
            self.add(Delivery(feed, f"landing/{feed}/{name}", data, day.isoformat() if day else None, rows,
                              expected=expected, file_defect=kind))

        first = {}
        for d in self.deliveries:
            first.setdefault(d.feed, d)
        # iqvia: commas instead of pipes; a .gz that is not gzip; a name with dashes in the date
        header, sample = self.iqvia_sample
        if day := day_for("iqvia_rx"):
            add("iqvia_rx", f"RXDYN_WEEKLY_{ymd(day)}.txt", pipe_bytes(header, sample, ","), len(sample),
                "wrong_delimiter", day)
        if day := day_for("iqvia_rx"):
            # plain text under a .gz name; other rows than the bad-name file, so the bytes differ
            add("iqvia_rx", f"RXDYN_WEEKLY_{ymd(day)}.txt.gz", pipe_bytes(header, sample[1:]), len(sample) - 1,
                "not_declared_format", day)
        add("iqvia_rx", f"RXDYN_WEEKLY_{self.end.isoformat()}.txt", pipe_bytes(header, sample), len(sample),
            "bad_file_name", None)
        # sap: a required column missing; an .xlsx that is CSV text
        sap = next(d for d in self.deliveries if d.feed == "sap_billing" and d.key.endswith(".csv")
                   and not d.drift_columns)
        sap_rows = list(csv.reader(io.StringIO(sap.data.decode("utf-8-sig"))))
        if day := day_for("sap_billing"):
            drop = sap_rows[0].index("material")
            cut = [[v for i, v in enumerate(r) if i != drop] for r in sap_rows]
            add("sap_billing", f"SAP_BILLING_{ymd(day)}.csv", csv_bytes(cut[0], cut[1:]), len(cut) - 1,
                "missing_required_column", day)
        if day := day_for("sap_billing"):
            add("sap_billing", f"SAP_BILLING_{ymd(day)}.xlsx", csv_bytes(sap_rows[0], sap_rows[1:]), None,
                "not_declared_format", day)
        # calls: data rows only
        calls = first["sfdc_call"]
        call_rows = list(csv.reader(io.StringIO(calls.data.decode())))[1:]
        if day := day_for("sfdc_call"):
            add("sfdc_call", f"SFDC_CALL_{ymd(day)}.csv", csv_bytes([], call_rows, with_header=False),
                len(call_rows), "no_header", day)
        # accounts: a Windows-1252 export (not UTF-8)
        accounts = list(csv.reader(io.StringIO(first["sfdc_account"].data.decode())))
        accounts[1][3] = "Müller"
        if day := day_for("sfdc_account"):
            text = csv_bytes(accounts[0], accounts[1:]).decode()
            add("sfdc_account", f"SFDC_ACCOUNT_{ymd(day)}.csv", text.encode("cp1252", errors="replace"), None,
                "undecodable", day)
        # product master: 0 bytes
        if day := day_for("product_master"):
            add("product_master", f"PRODUCT_MASTER_{ymd(day)}.csv", b"", None, "empty_file", day)
        # fx: truncated JSON; no rates; then row rules that break every rate of a file
        fx_first = first["fx_rates"]
        if day := day_for("fx_rates"):
            add("fx_rates", f"FX_RATES_{ymd(day)}.json", fx_first.data[: len(fx_first.data) // 2], None,
                "invalid_json", day)
        if day := day_for("fx_rates"):
            body = json.dumps({"base": "EUR", "date": day.isoformat(), "success": False}, indent=2).encode()
            add("fx_rates", f"FX_RATES_{ymd(day)}.json", body, None, "missing_rates", day)
        base_rates = self.fx[self.bdays[0]]
        for rule in FX_FILE_RULES:
            day = day_for("fx_rates")
            if day is None:
                break
            body = {"base": "EUR", "date": day.isoformat(), "rates": base_rates}
            if rule == "rate_date_required":
                body["date"] = ""  # present but empty: a null value (a missing key rejects the file)
            elif rule == "rate_date_type":
                body["date"] = day.strftime("%d/%m/%Y")
            elif rule == "not_future":
                body["date"] = (day + timedelta(days=2)).isoformat()
            elif rule == "base_currency_required":
                body["base"] = ""
            else:
                body["base"] = "Euro"
            self.add(Delivery("fx_rates", f"landing/fx_rates/FX_RATES_{ymd(day)}.json",
                              json.dumps(body, indent=2).encode(), day.isoformat(), len(base_rates),
                              row_defects={rule: len(base_rates)}))
        # territory: the same bytes delivered again the next day
        if self.weeks >= 2:
            original = next(d for d in self.deliveries if d.feed == "sfdc_territory")
            day = self.fridays[0] + timedelta(days=1)
            self.add(Delivery("sfdc_territory", f"landing/sfdc_territory/SFDC_TERRITORY_{ymd(day)}.csv",
                              original.data, day.isoformat(), original.rows, expected="duplicate",
                              file_defect="duplicate_delivery"))


# mutators ------------------------------------------------------------------------------------------------
def _nonneg(value: str) -> bool:
    return value.strip() != "" and not value.startswith("-")


def iqvia_mutators(data_date: date) -> dict:
    oldest = data_date - timedelta(weeks=12)

    def set_(**changes):
        idx = {"pid": 0, "npi": 1, "ndc": 2, "we": 3, "payer": 4, "channel": 5, "nrx": 6, "trx": 7, "nbrx": 8,
               "nqty": 9, "tqty": 10}

        def mutate(row, rng):
            for name, value in changes.items():
                row[idx[name]] = value(row, rng) if callable(value) else value
            return row
        return mutate

    def friday_rule(row, rng):
        we = date.fromisoformat(row[3])
        row[3] = (we - timedelta(days=1) if we > oldest else we + timedelta(days=1)).isoformat()
        return row

    def npi_rule(row, rng):
        if norm(row[1]):
            row[1] = corrupt_npi(row[1])
        else:
            row[1] = bad_npi(rng)
        return row

    def hyphenate(row, rng):
        n = row[2]
        row[2] = f"{n[:5]}-{n[5:9]}-{n[9:]}" if rng.random() < 0.7 else n[1:]
        return row

    def trx_below(row, rng):
        row[6] = str(int(row[7]) + 1)  # nrx above trx, nbrx still <= nrx
        return row

    return {
        "prescriber_id_required": set_(pid=""),
        "prescriber_id_format": set_(pid=lambda r, g: f"{int(r[0]):011d}"),
        "npi_check_digit": npi_rule,
        "ndc11_required": set_(ndc=""),
        "ndc11_format": hyphenate,
        "week_ending_required": set_(we=lambda r, g: g.choice(("", "NULL"))),
        "week_ending_type": set_(we=lambda r, g: date.fromisoformat(r[3]).strftime("%m/%d/%Y")),
        "week_ending_friday": friday_rule,
        "not_future": set_(we=lambda r, g: (data_date + timedelta(weeks=g.randint(1, 2))).isoformat()),
        "week_in_window": set_(we=lambda r, g: (data_date - timedelta(weeks=g.randint(13, 20))).isoformat()),
        "payer_type_allowed": set_(payer="UNKNOWN"),
        "channel_allowed": set_(channel="ONLINE"),
        # a broken or negative count has its partners in cross-column rules nulled, so one rule breaks
        "nrx_type": set_(nrx="two", nbrx="", trx=""),
        "nrx_range": set_(nrx="-1", nbrx=""),
        "nbrx_le_nrx": set_(nbrx=lambda r, g: str(int(r[6]) + 1)),
        "trx_type": set_(trx="x1", nrx=""),
        "trx_range": set_(trx="-2", nrx=""),
        "trx_ge_nrx": trx_below,
        "nbrx_type": set_(nbrx="one", nrx=""),
        "nbrx_range": set_(nbrx="-1"),
        "nqty_type": set_(nqty=lambda r, g: r[9].replace(".", ","), tqty=""),
        "nqty_range": set_(nqty="-3.0"),
        "nqty_le_tqty": set_(nqty=lambda r, g: f"{float(r[10]) + 1.5:.1f}"),
        "tqty_type": set_(tqty="ten", nqty=""),
        "tqty_range": set_(tqty="-1.0", nqty=""),
    }


def sap_mutators(data_date: date) -> dict:
    def pos(fn):  # only on rows with non-negative amounts (invoices, debit memos)
        def mutate(row, rng):
            return fn(row, rng) if row[2] in ("F2", "L2") else None
        return mutate

    def at_(i, fn):
        def mutate(row, rng):
            row[i] = fn(row, rng) if callable(fn) else fn
            return row
        return mutate

    def flip_sign(row, rng):
        if float(row[10]) == 0:
            return None
        row[10] = row[10][1:] if row[10].startswith("-") else "-" + row[10]
        return row

    def more_decimals(row, rng):
        if float(row[10]) == 0:
            return None
        row[10] += str(rng.randint(1, 9))
        return row

    def german(row, rng):
        v = row[10]
        sign, v = ("-", v[1:]) if v.startswith("-") else ("", v)
        row[10] = sign + f"{float(v):,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
        if "," not in row[10]:
            return None
        return row

    return {
        "billing_document_required": at_(0, ""),
        "billing_document_format": at_(0, lambda r, g: r[0][1:]),
        "billing_item_required": at_(1, ""),
        "billing_item_format": at_(1, lambda r, g: str(int(r[1]))),
        "billing_type_allowed": pos(at_(2, "ZF2")),
        "billing_date_required": at_(3, ""),
        "billing_date_type": at_(3, lambda r, g: date.fromisoformat(r[3]).strftime("%d.%m.%Y")),
        "not_future": at_(3, lambda r, g: (data_date + timedelta(days=g.randint(1, 10))).isoformat()),
        "sales_org_required": at_(4, ""),
        "sales_org_format": at_(4, lambda r, g: r[4].lower()),
        "sold_to_required": at_(5, ""),
        "sold_to_format": at_(5, lambda r, g: str(int(r[5]))),
        "ship_to_required": at_(6, ""),
        "ship_to_format": at_(6, lambda r, g: str(int(r[6]))),
        "material_required": at_(7, ""),
        "material_format": at_(7, lambda r, g: r[7].lower()),
        "quantity_type": pos(at_(8, lambda r, g: r[8].replace("0", "O", 1) if "0" in r[8] else "ten")),
        "sign_by_billing_type": flip_sign,
        "sales_unit_required": at_(9, ""),
        "sales_unit_format": at_(9, "PACK"),
        "net_value_type": german,
        "net_value_format": more_decimals,
        "currency_code": at_(11, "BRL"),
    }


def call_mutators(data_date: date, brand_codes: list[str]) -> dict:
    def at_(i, fn, only_unsubmitted=False):
        def mutate(row, rng):
            if only_unsubmitted and row[8] == "SUBMITTED":
                return None
            row[i] = fn(row, rng) if callable(fn) else fn
            return row
        return mutate

    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    def bad_id(row, rng):
        i = rng.choice((0, 1))
        row[i] = bad_sfdc_id(row[i])
        return row

    def unknown_brand(row, rng):
        codes = [c for c in row[7].split(";") if c][:2]
        row[7] = ";".join(codes + [UNKNOWN_BRAND])
        return row

    def submitted_later(row, rng):
        if row[8] != "SUBMITTED":
            return None
        row[4] = ts(parse(row[10]) + timedelta(hours=rng.randint(1, 6)))
        return row

    return {
        "call_id_required": at_(0, ""),
        "sfdc_id_format": bad_id,
        "account_id_required": at_(1, ""),
        "rep_id_required": at_(2, ""),
        "territory_id_required": at_(3, ""),
        "call_datetime_required": at_(4, "", only_unsubmitted=True),
        "call_datetime_type": at_(4, lambda r, g: parse(r[4]).strftime("%m/%d/%Y %I:%M %p"), True),
        "call_channel_allowed": at_(5, "FAX"),
        "call_type_allowed": at_(6, "LUNCH_AND_LEARN"),
        "products_detailed_format": at_(7, lambda r, g: ";".join(g.sample(brand_codes, 4))),
        "products_detailed_allowed": unknown_brand,
        "call_status_allowed": at_(8, "COMPLETED"),
        "last_modified_type": at_(10, lambda r, g: parse(r[10]).strftime("%m/%d/%Y %H:%M"), True),
        "not_future": at_(10, lambda r, g: ts(at(data_date + timedelta(days=g.randint(1, 5)), 10))),
        "submitted_not_after_modified": submitted_later,
    }


def account_mutators(data_date: date) -> dict:
    def at_(i, fn):
        def mutate(row, rng):
            row[i] = fn(row, rng) if callable(fn) else fn
            return row
        return mutate

    def npi_rule(row, rng):
        row[1] = corrupt_npi(row[1]) if row[1] else bad_npi(rng)
        return row

    return {
        "account_id_required": at_(0, ""),
        "sfdc_id_format": at_(0, lambda r, g: bad_sfdc_id(r[0])),
        "npi_check_digit": npi_rule,
        "first_name_required": at_(2, ""),
        "last_name_required": at_(3, "N/A"),
        "specialty_allowed": at_(4, "CARDIOLOGY"),
        "email_format": at_(5, lambda r, g: (r[5] or "office@clinic.example").replace("@", " at ")),
        "state_allowed": at_(9, "ON"),
        "zip_format": at_(10, lambda r, g: r[10] + "-" + f"{g.randint(0, 9999):04d}"),
        "territory_id_required": at_(11, ""),
        "pdrp_opt_out_type": at_(12, "Y"),
        "is_active_type": at_(13, "yes"),
        "last_modified_type": at_(14, lambda r, g: datetime.fromisoformat(r[14].replace("Z", "+00:00"))
                                  .strftime("%m/%d/%Y %H:%M")),
        "not_future": at_(14, lambda r, g: ts(at(data_date + timedelta(days=g.randint(1, 9)), 9))),
    }


def required_mutators(feed) -> dict:
    def blank(i):
        def mutate(row, rng):
            row[i] = ""
            return row
        return mutate
    return {f"{c.name}_required": blank(i) for i, c in enumerate(feed.columns) if c.required}


def product_mutators() -> dict:
    def at_(i, fn):
        def mutate(row, rng):
            row[i] = fn(row, rng) if callable(fn) else fn
            return row
        return mutate

    out = required_mutators(FEEDS["product_master"])
    out.update({
        "ndc11_format": at_(0, lambda r, g: f"{r[0][:5]}-{r[0][5:9]}-{r[0][9:]}"),
        "brand_code_format": at_(2, lambda r, g: r[3] + " Pen"),
        "market_allowed": at_(5, "UROLOGY"),
        "is_own_brand_type": at_(7, "Y"),
        "units_per_pack_type": at_(8, "10 ml"),
        "units_per_pack_range": at_(8, "0"),
    })
    return out


def _blank_material(row: list) -> list:
    row[1] = ""  # an extra product row must not claim a real SAP material
    return row


# public API --------------------------------------------------------------------------------------------
def generate(lake: Lake, end_friday: date, weeks: int = 13, hcps: int = 2000, seed: int = 7,
             defect_rate: float = 0.01, progress: Progress | None = None,
             feeds: Collection[str] | None = None) -> dict:
    """Write deliveries of `feeds` (default: every feed of the registry) into lake `landing/<feed>/` and
    return the manifest (a JSON-able dict).

    The manifest lists every file with its expected outcome (`loaded`, `rejected`, `duplicate`), its
    whole-file defect, the rows that must be quarantined per rule (a row that breaks two rules counts
    under both, once in `rows_quarantined`) and any schema-drift columns, then totals, the referential
    warnings and the restatements (late updates, reversals, redelivered records) per file; the caller
    saves it (it is not a delivery, so it never goes to `landing/`).
    """
    wanted = set(FEEDS) & set(FEED_ORDER) if feeds is None else set(feeds)
    if unknown := wanted - set(FEED_ORDER):
        raise ValueError(f"the generator knows no feed {', '.join(sorted(unknown))}")
    if end_friday.weekday() != 4:
        raise ValueError(f"end_friday must be a Friday, got {end_friday.isoformat()} ({end_friday:%A})")
    if weeks < 1 or hcps < 1:
        raise ValueError("weeks and hcps must be positive")
    if not 0 <= defect_rate < 0.5:
        raise ValueError("defect_rate must be in [0, 0.5)")
    gen = Generator(end_friday, weeks, hcps, seed, defect_rate,
                    pulled=tuple(f for f in pulled_feeds.FEEDS if f in wanted))
    gen.run()
    deliveries = sorted((d for d in gen.deliveries if d.feed in wanted),
                        key=lambda d: (FEED_ORDER.index(d.feed), d.key))
    per_feed = Counter(d.feed for d in deliveries)
    done: Counter = Counter()
    for d in deliveries:
        lake.put_bytes(d.data, d.key)
        done[d.feed] += 1
        if progress:
            progress(d.feed, done[d.feed], per_feed[d.feed])
    totals = {}
    for feed in (f for f in FEED_ORDER if f in wanted):
        by_rule: Counter = Counter()
        rows = quarantined = 0
        for d in deliveries:
            if d.feed == feed and d.expected == "loaded":
                rows += d.rows or 0
                quarantined += d.rows_quarantined
                by_rule.update(d.row_defects)
        totals[feed] = {"rows": rows, "quarantined": quarantined, "by_rule": dict(sorted(by_rule.items()))}
    return {
        "args": {"end_friday": end_friday.isoformat(), "weeks": weeks, "hcps": hcps, "seed": seed,
                 "defect_rate": defect_rate},
        "files": [d.manifest() for d in deliveries],
        "totals": totals,
        "referential": {k: dict(sorted(v.items())) for k, v in sorted(gen.referential.items())
                        if k.split(".")[0] in wanted},
        "restatements": {k: dict(sorted(v.items())) for k, v in sorted(gen.restatements.items())},
    }
