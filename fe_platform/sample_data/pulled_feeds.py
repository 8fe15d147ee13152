"""Sample data of the pulled and streamed feeds (shared/spec/sources.md), in the generator's world.

- `sp_dispense`: specialty-pharmacy dispenses of the franchise's own brands, by prescribers of the
  world (their NPIs) and NDCs of the product master: first fills (NEW) then refills about a days'
  supply apart, plus late corrections and reversals (a REVERSED version of an earlier dispense) in
  later days' files. Each file is exactly what the puller would land from a `dispense` table that
  holds these rows: same rendering, same order, same bytes (`fill_dispense_table` builds that table).
- `hcp_event`: attendances of speaker programs, symposia, webinars and roundtables by the world's
  HCPs, recorded on the event day and some corrected days later; served by the API page by page.
- `hcp_engagement`: email, portal and webinar events of the world's HCPs, as Firehose-like files per
  shard and day (the stream's one shard is split in two half-way through), with some records
  redelivered in the next file of their shard (a consumer restart); `engagement_records` gives them
  back for a stream.

Defects follow the generator's plan (every rule of the contract at least once, then about
`defect_rate` of the rows), one rule per row, except the future-dated dispense: its dispense_date is
after the file's data date and after its own updated_at, so it breaks `not_future` and
`updated_after_dispense` together (in a pulled file one never comes without the other).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from fe_platform.lib.lake import Lake
from fe_platform.lib.sources import hcp_engagement, hcp_event, sp_dispense
from fe_platform.sample_data import catalog as C
from fe_platform.sample_data.defects import DefectPlanner, inject_in_place
from fe_platform.sample_data.world import at, corrupt_npi, ts, weighted

if TYPE_CHECKING:  # the generator imports this module
    from fe_platform.sample_data.generator import Generator

FEEDS = ("sp_dispense", "hcp_event", "hcp_engagement")
UNKNOWN_BRAND = "ZYMOVA"

RULES: dict[str, tuple[str, ...]] = {
    "sp_dispense": (
        "dispense_id_required", "dispense_id_range", "pharmacy_ncpdp_required", "pharmacy_ncpdp_format",
        "patient_token_required", "patient_token_format", "prescriber_npi_required", "npi_check_digit",
        "ndc11_required", "ndc11_format", "dispense_date_required", "updated_after_dispense", "fill_type_allowed",
        "quantity_range", "days_supply_range", "payer_type_allowed", "copay_usd_range", "copay_usd_format",
        "status_allowed", "duplicate_key"),
    "hcp_event": (
        "attendance_id_required", "attendance_id_format", "event_id_required", "event_id_format",
        "event_type_allowed", "event_date_required", "event_date_type", "not_future", "brand_code_required",
        "npi_required", "npi_check_digit", "role_allowed", "attended_type", "meal_value_usd_type",
        "meal_value_usd_range", "meal_value_usd_format", "updated_at_required", "updated_at_type", "duplicate_key"),
    "hcp_engagement": (
        "event_id_required", "event_id_format", "occurred_at_required", "occurred_at_type", "not_future",
        "channel_allowed", "action_allowed", "action_fits_channel", "npi_check_digit", "sfdc_id_format",
        "hcp_identified", "brand_code_required", "content_id_required", "content_id_format", "record_json",
        "duplicate_key"),
}
# Rules of the contract these sources cannot break in a single row, with why.
RULE_EXCEPTIONS = {
    # The dispense table's columns are typed: an unparseable id, date, number or timestamp cannot be in it.
    *{("sp_dispense", f"{c}_type") for c in ("dispense_id", "dispense_date", "quantity", "days_supply",
                                             "copay_usd", "updated_at")},
    # Day D is the rows with updated_at in D: a null updated_at is never in a day's file. (Nor is a
    # later one: sp_dispense's not_future is broken by a dispense_date after D, with updated_after_dispense.)
    ("sp_dispense", "updated_at_required"),
    # The events API answers pages of objects and the puller writes each item as one line: a line that is
    # no JSON object (`record_json`, which ingestion applies to every JSON-lines feed) cannot be in its files.
    ("hcp_event", "record_json"),
}

CHANNEL_ACTIONS = {"EMAIL": (("SENT", 40), ("DELIVERED", 34), ("OPENED", 18), ("CLICKED", 8)),
                   "PORTAL": (("VISITED", 60), ("CLICKED", 25), ("DOWNLOADED", 15)),
                   "WEBINAR": (("VISITED", 1),)}
EVENT_TYPES = (("SPEAKER_PROGRAM", 45, (35.0, 125.0)), ("CONGRESS_SYMPOSIUM", 15, (0.0, 60.0)),
               ("WEBINAR", 25, (0.0, 0.0)), ("ROUNDTABLE", 15, (25.0, 95.0)))
DAYS_SUPPLY = ((28, 40), (30, 40), (84, 10), (90, 10))
PORTAL_ASSETS = ("dosing-guide", "patient-brochure", "injection-video", "coverage-finder", "clinical-summary")


class RawLine(str):
    """A landing line that is not a JSON object (the `record_json` defect), kept as its text."""


# --- injection of defects into JSON-lines rows ------------------------------------------------------
def inject_items(rows: list, plan: list[str], mutators: dict[str, Callable], key: str, rng: random.Random,
                 first_kept: bool) -> tuple[Counter, list[str], list]:
    """Break dict rows of `rows` in place, one rule each; duplicates are inserted later in the file.

    With `first_kept` a duplicate's first occurrence stays valid and only the later copy counts (the
    stream's rule); otherwise both count. Returns counts by rule, failed rules and the broken rows.
    """
    counts: Counter = Counter()
    failed: list[str] = []
    bad: set[int] = set()
    keys = {r.get(key) for r in rows if isinstance(r, dict)}
    copies = []
    for rule in plan:
        for _ in range(40 if rows else 0):
            i = rng.randrange(len(rows))
            if i in bad or not isinstance(rows[i], dict):
                continue
            if rule == "duplicate_key":
                if rows[i].get(key) is None:
                    continue
                copies.append(dict(rows[i]))
                bad.update(() if first_kept else (i,))
                counts[rule] += 1 if first_kept else 2
                break
            new = mutators[rule](dict(rows[i]), rng)
            if new is None:
                continue
            if isinstance(new, dict) and new.get(key) != rows[i].get(key):
                if new.get(key) in keys:
                    continue  # a new key must not repeat another row's (two nulls would, too)
                keys.add(new.get(key))
            rows[i] = new
            bad.add(i)
            counts[rule] += 1
            break
        else:
            failed.append(rule)
    broken = [rows[i] for i in sorted(bad)] + copies
    for copy in copies:
        rows.insert(rng.randrange(_after(rows, copy, key), len(rows) + 1), copy)
    return counts, failed, broken


def clean_rows(rows: list, broken: list) -> list[dict]:
    ids = {id(r) for r in broken}
    return [r for r in rows if isinstance(r, dict) and id(r) not in ids]


def _after(rows: list, copy: dict, key: str) -> int:
    """The position just after the first row holding `copy`'s key: a redelivered copy comes later."""
    return next(i for i, r in enumerate(rows) if isinstance(r, dict) and r.get(key) == copy[key]) + 1


def json_line(row) -> bytes:
    if isinstance(row, RawLine):
        return row.encode() + b"\n"
    return hcp_event.item_line(row)


# --- the feeds --------------------------------------------------------------------------------------
class PulledFeeds:
    """Builds the deliveries of the pulled feeds into `gen` (a sample_data Generator)."""

    def __init__(self, gen: Generator, feeds: Iterable[str]):
        self.gen = gen
        self.world = gen.world
        self.feeds = [f for f in FEEDS if f in set(feeds)]
        self.days = gen.bdays
        self.crm = [a for a in self.world.accounts if a.is_active]
        self.own = {m: [p for p in self.world.products if p.brand.is_own and p.brand.market == m]
                    for m in ("FERTILITY", "ENDOCRINOLOGY")}

    def run(self) -> None:
        for feed in self.feeds:
            getattr(self, f"gen_{feed}")()

    def _planner(self, feed: str, files: int) -> DefectPlanner:
        return DefectPlanner(RULES[feed], files, self.gen.rate, self.gen.rng(f"plan-{feed}"))

    def _market(self, specialty: str, rng: random.Random) -> str:
        return C.SPECIALTY_MARKET.get(specialty) or rng.choice(("FERTILITY", "ENDOCRINOLOGY"))

    # sp_dispense ----------------------------------------------------------------------------------
    def gen_sp_dispense(self) -> None:
        from fe_platform.sample_data.generator import Delivery

        gen, rng = self.gen, self.gen.rng("sp_dispense")
        pharmacies = [f"{n:07d}" for n in rng.sample(range(100_000, 9_999_999), 12)]
        prescribers = [p for p in self.world.prescribers if p.npi]
        state = {"id": 7_000_000}
        patients: list[dict] = []
        versions: dict[date, list[list[str]]] = {d: [] for d in self.days}

        def new_patient(first_fill: date, refill: bool) -> dict:
            prescriber = rng.choice(prescribers)
            market = prescriber.market or rng.choice(("FERTILITY", "ENDOCRINOLOGY"))
            return {"token": f"{rng.getrandbits(128):032x}", "npi": prescriber.npi,
                    "product": rng.choice(self.own[market]), "payer": weighted(rng, C.PAYERS),
                    "pharmacy": rng.choice(pharmacies), "supply": weighted(rng, DAYS_SUPPLY),
                    "next": first_fill, "fills": 1 if refill else 0}

        def dispense(p: dict, day: date) -> list[str]:
            state["id"] += rng.randint(1, 3)
            packs = rng.choice((1, 1, 1, 2, 3))
            quantity = p["product"].units_per_pack * packs
            quantity_text = f"{quantity - 0.5:g}" if rng.random() < 0.08 and quantity > 1 else str(quantity)
            copay = {"COMMERCIAL": (0, 150), "MEDICARE": (20, 450), "MEDICAID": (0, 5), "CASH": (150, 2400),
                     "OTHER": (0, 60)}[p["payer"]]
            amount = 0.0 if p["payer"] == "COMMERCIAL" and rng.random() < 0.4 else rng.uniform(*copay)
            dispensed = day - timedelta(days=rng.choice((0, 0, 0, 0, 0, 1, 2)))
            return [str(state["id"]), p["pharmacy"], p["token"], p["npi"], p["product"].ndc11,
                    dispensed.isoformat(), "REFILL" if p["fills"] else "NEW", quantity_text, str(p["supply"]),
                    p["payer"], f"{amount:.2f}", "DISPENSED",
                    ts(at(day, rng.randint(7, 19), rng.randint(0, 59), rng.randint(0, 59)))]

        def later(day: date, lo: int, hi: int) -> date | None:
            options = [d for d in self.days if lo <= (d - day).days <= hi]
            return rng.choice(options) if options else None

        for _ in range(max(3, round(gen.hcps * 0.08))):  # patients on therapy before the window
            patients.append(new_patient(self.days[0] + timedelta(days=rng.randint(0, 29)), refill=True))
        corrected_or_reversed: set[tuple[str, date]] = set()
        for day in self.days:
            for _ in range(max(3, round(gen.hcps * 0.01 * rng.uniform(0.6, 1.4)))):  # a few even in a small world
                patients.append(new_patient(day, refill=False))
            for p in patients:
                if p["next"] > day or p.get("stopped"):
                    continue
                row = dispense(p, day)
                versions[day].append(row)
                p["fills"] += 1
                p["next"] = day + timedelta(days=p["supply"] - rng.randint(0, 3))
                p["stopped"] = rng.random() < 0.06
                if rng.random() < 0.04 and (when := later(day, 1, 6)) and (row[0], when) not in corrected_or_reversed:
                    fixed = list(row)  # a late correction: the copay or the quantity was wrong
                    if rng.random() < 0.5:
                        fixed[10] = f"{float(row[10]) * rng.uniform(0.3, 0.9):.2f}"
                    else:
                        fixed[7] = str(int(float(row[7])) + p["product"].units_per_pack)
                    fixed[12] = ts(at(when, rng.randint(7, 19), rng.randint(0, 59), rng.randint(0, 59)))
                    versions[when].append(fixed)
                    corrected_or_reversed.add((row[0], when))
                elif rng.random() < 0.025 and (when := later(day, 1, 9)) \
                        and (row[0], when) not in corrected_or_reversed:
                    reversed_row = list(row)  # the claim was reversed: the dispense did not stand
                    reversed_row[11] = "REVERSED"
                    reversed_row[12] = ts(at(when, rng.randint(7, 19), rng.randint(0, 59), rng.randint(0, 59)))
                    versions[when].append(reversed_row)
                    corrected_or_reversed.add((row[0], when))

        planner = self._planner("sp_dispense", len(self.days))
        landed: set[str] = set()  # dispense ids of clean rows in earlier files
        for index, day in enumerate(self.days):
            rows = versions[day]
            counts, failed, bad = inject_in_place(rows, planner.plan(index, len(rows)), dispense_mutators(day),
                                                  (0,), "duplicate_key", rng)
            planner.failed(failed)
            if not rows:
                continue
            counts["not_future"] += counts["updated_after_dispense"]  # the same rows break both
            clean = [r for i, r in enumerate(rows) if i not in bad]
            rows.sort(key=lambda r: (r[12], r[0] == "", int(r[0] or 0)))
            out = io.BytesIO()
            sp_dispense.write_csv_gz(out, [rows])
            key = sp_dispense.landing_key(day)
            again = [r for r in clean if r[0] in landed]
            gen.note_restatement("sp_dispense.late_update", key, sum(r[11] != "REVERSED" for r in again))
            gen.note_restatement("sp_dispense.reversal", key, sum(r[11] == "REVERSED" for r in again))
            landed.update(r[0] for r in clean)
            gen.add(Delivery("sp_dispense", key, out.getvalue(), day.isoformat(), len(rows),
                             row_defects={k: v for k, v in counts.items() if v}, quarantined=len(bad)))

    # hcp_event ------------------------------------------------------------------------------------
    def gen_hcp_event(self) -> None:
        from fe_platform.sample_data.generator import Delivery

        gen, rng = self.gen, self.gen.rng("hcp_event")
        with_npi = [a for a in self.crm if a.npi]
        items: dict[date, list[dict]] = {d: [] for d in self.days}
        event_no, attendance_no = 10_400_000, 3_100_000_000
        for day in self.days:
            for _ in range(max(1, round(gen.hcps * 0.004 * rng.uniform(0.5, 1.5)))):
                event_no += rng.randint(1, 9)
                event_type, _, meal = rng.choices(EVENT_TYPES, [t[1] for t in EVENT_TYPES])[0]
                speaker = rng.choice(with_npi)
                market = self._market(speaker.specialty, rng)
                brand = rng.choice(self.own[market]).brand.code
                guests = rng.sample(with_npi, min(len(with_npi), rng.randint(4, 18)))
                recorded = day if rng.random() < 0.7 else next((d for d in self.days if d > day), None)
                if recorded is None:
                    continue
                for role, hcp in [("SPEAKER", speaker)] + [("ATTENDEE", g) for g in guests if g is not speaker]:
                    attendance_no += rng.randint(1, 5)
                    attended = role == "SPEAKER" or rng.random() < 0.85
                    value = round(rng.uniform(*meal), 2) if attended and meal[1] else 0.0
                    item = {"attendance_id": f"AT-{attendance_no:010d}", "event_id": f"EV-{event_no:08d}",
                            "event_type": event_type, "event_date": day.isoformat(), "brand_code": brand,
                            "npi": hcp.npi, "role": role, "attended": attended, "meal_value_usd": value,
                            "updated_at": ts(at(recorded, rng.randint(17, 23) if recorded == day
                                                else rng.randint(8, 12), rng.randint(0, 59)))}
                    items[recorded].append(item)
                    if rng.random() < 0.08:  # corrected later: a no-show, or the meal split again
                        gap = rng.randint(1, 5)
                        when = next((d for d in self.days if (d - recorded).days >= gap), None)
                        if when is not None:
                            fixed = dict(item, attended=False, meal_value_usd=0.0) if attended and \
                                role == "ATTENDEE" else dict(item, meal_value_usd=round(value * 0.8, 2))
                            fixed["updated_at"] = ts(at(when, rng.randint(8, 18), rng.randint(0, 59)))
                            items[when].append(fixed)
        planner = self._planner("hcp_event", len(self.days))
        landed: set[str] = set()  # attendance ids of clean items in earlier files
        for index, day in enumerate(self.days):
            rows: list = sorted(items[day], key=lambda i: (i["updated_at"], i["attendance_id"]))
            counts, failed, broken = inject_items(rows, planner.plan(index, len(rows)), event_mutators(day),
                                                  "attendance_id", rng, first_kept=False)
            planner.failed(failed)
            if not rows:
                continue
            key = hcp_event.landing_key(day)
            clean = clean_rows(rows, broken)
            if gen.rate > 0 and clean and rng.random() < 0.2:
                # a brand the product master does not know: a referential warning, not a row defect
                rng.choice(clean)["brand_code"] = UNKNOWN_BRAND
                gen.note_referential("hcp_event.brand_code", key, 1)
            gen.note_restatement("hcp_event.late_update", key, sum(r["attendance_id"] in landed for r in clean))
            landed.update(r["attendance_id"] for r in clean)
            gen.add(Delivery("hcp_event", key, b"".join(json_line(r) for r in rows), day.isoformat(), len(rows),
                             row_defects=dict(counts), quarantined=len(broken)))

    # hcp_engagement -------------------------------------------------------------------------------
    def gen_hcp_engagement(self) -> None:
        from fe_platform.sample_data.generator import Delivery

        gen, rng = self.gen, self.gen.rng("hcp_engagement")
        split_at = self.days[len(self.days) // 2]
        files: list[tuple[date, str, list[dict]]] = []  # (close day, shard, events)
        for day in self.days:
            # one shard, split in two half-way as the volume grows
            shards = ["shardId-000000000000"] if day < split_at else ["shardId-000000000001", "shardId-000000000002"]
            by_shard: dict[str, list[dict]] = {s: [] for s in shards}
            for _ in range(max(10, round(gen.hcps * 0.3 * rng.uniform(0.8, 1.2)))):
                event = self._engagement_event(day, rng)
                by_shard[rng.choice(shards)].append(event)
            for shard, events in by_shard.items():
                files.append((day, shard, sorted(events, key=lambda e: e["occurred_at"])))

        planner = self._planner("hcp_engagement", len(files))
        written: dict[str, int] = Counter()
        previous: dict[str, list[dict]] = {}
        for index, (day, shard, events) in enumerate(files):
            rows: list = list(events)
            counts, failed, broken = inject_items(rows, planner.plan(index, len(rows)), engagement_mutators(day),
                                                  "event_id", rng, first_kept=True)
            planner.failed(failed)
            repeated = Counter(r.get("event_id") for r in rows if isinstance(r, dict))
            clean = [r for r in clean_rows(rows, broken) if repeated[r.get("event_id")] == 1]
            earlier = previous.get(shard, [])
            repeats = [dict(r) for r in earlier[-rng.randint(2, 6):]] if earlier and index % 4 == 1 else []
            rows = repeats + rows  # the stream redelivers them after a consumer restart
            previous[shard] = clean
            written[shard] += 1
            closed = at(day, 23, 40 + int(shard[-1]) * 4, rng.randint(0, 59))
            key = hcp_engagement.landing_key(closed, shard, written[shard])
            gen.note_restatement("hcp_engagement.repeat_across_files", key, len(repeats))
            data = b"".join(hcp_engagement.record_line(json_line(r)) for r in rows)
            gen.add(Delivery("hcp_engagement", key, gzip.compress(data, compresslevel=hcp_engagement.GZIP_LEVEL,
                                                                   mtime=0),
                             day.isoformat(), len(rows), row_defects=dict(counts), quarantined=len(broken)))

    def _engagement_event(self, day: date, rng: random.Random) -> dict:
        account = rng.choice(self.crm)
        channel = weighted(rng, (("EMAIL", 55), ("PORTAL", 35), ("WEBINAR", 10)))
        action = weighted(rng, CHANNEL_ACTIONS[channel])
        brand = rng.choice(self.own[self._market(account.specialty, rng)]).brand.code
        npi, account_id = account.npi or None, account.account_id
        if channel == "PORTAL" and npi and rng.random() < 0.5:
            account_id = None  # the portal knows the HCP by NPI login only
        content = {"EMAIL": f"EM-{brand}-{day:%Y%m}-{rng.choice('ABC')}",
                   "PORTAL": f"PT-{brand}-{rng.choice(PORTAL_ASSETS)}",
                   "WEBINAR": f"WB-{brand}-{day:%Y%m%d}"}[channel]
        event = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                 "occurred_at": ts(at(day, rng.randint(0, 22), rng.randint(0, 59), rng.randint(0, 59))),
                 "channel": channel, "action": action, "npi": npi, "account_id": account_id, "brand_code": brand,
                 "content_id": content}
        if account_id is None:
            del event["account_id"]  # this producer leaves out what it does not know
        return event


# --- mutators ---------------------------------------------------------------------------------------
def dispense_mutators(day: date) -> dict:
    """Rows of `sp_dispense.COLUMNS` as text lists; "" is NULL in the source table."""
    def at_(i, fn):
        def mutate(row, rng):
            row[i] = fn(row, rng) if callable(fn) else fn
            return row
        return mutate

    def negative_copay(row, rng):
        row[10] = f"-{max(float(row[10]), 5.0):.2f}"
        return row

    return {
        "dispense_id_required": at_(0, ""),
        "dispense_id_range": at_(0, lambda r, g: f"-{r[0]}"),
        "pharmacy_ncpdp_required": at_(1, ""),
        "pharmacy_ncpdp_format": at_(1, lambda r, g: r[1][1:]),
        "patient_token_required": at_(2, ""),
        "patient_token_format": at_(2, lambda r, g: r[2].upper() if any(c.isalpha() for c in r[2]) else r[2][1:]),
        "prescriber_npi_required": at_(3, ""),
        "npi_check_digit": at_(3, lambda r, g: corrupt_npi(r[3])),
        "ndc11_required": at_(4, ""),
        "ndc11_format": at_(4, lambda r, g: f"{r[4][:5]}-{r[4][5:9]}-{r[4][9:]}"),
        "dispense_date_required": at_(5, ""),
        # dispensed on a later day than recorded (and than the file's day): see the module's docstring
        "updated_after_dispense": at_(5, lambda r, g: (day + timedelta(days=g.randint(1, 3))).isoformat()),
        "fill_type_allowed": at_(6, "TRANSFER"),
        "quantity_range": at_(7, "0"),
        "days_supply_range": at_(8, lambda r, g: g.choice(("0", "120"))),
        "payer_type_allowed": at_(9, "UNKNOWN"),
        "copay_usd_range": negative_copay,
        "copay_usd_format": at_(10, lambda r, g: f"{r[10]}5"),
        "status_allowed": at_(11, "PENDING"),
    }


def event_mutators(day: date) -> dict:
    def set_(name, fn):
        def mutate(item, rng):
            item[name] = fn(item, rng) if callable(fn) else fn
            return item
        return mutate

    def paid(fn):  # only where a meal was served, so the value is not 0
        def mutate(item, rng):
            return fn(item, rng) if item["meal_value_usd"] else None
        return mutate

    return {
        "attendance_id_required": set_("attendance_id", None),
        "attendance_id_format": set_("attendance_id", lambda i, g: i["attendance_id"].lower()),
        "event_id_required": set_("event_id", None),
        "event_id_format": set_("event_id", lambda i, g: i["event_id"].replace("-", "")),
        "event_type_allowed": set_("event_type", "DINNER"),
        "event_date_required": set_("event_date", None),
        "event_date_type": set_("event_date", lambda i, g: date.fromisoformat(i["event_date"]).strftime("%m/%d/%Y")),
        "not_future": set_("event_date", lambda i, g: (day + timedelta(days=g.randint(7, 30))).isoformat()),
        "brand_code_required": set_("brand_code", None),
        "npi_required": set_("npi", None),
        "npi_check_digit": set_("npi", lambda i, g: corrupt_npi(i["npi"])),
        "role_allowed": set_("role", "MODERATOR"),
        "attended_type": set_("attended", lambda i, g: "yes" if i["attended"] else "no"),
        "meal_value_usd_type": set_("meal_value_usd", lambda i, g: f"USD {i['meal_value_usd']}"),
        "meal_value_usd_range": paid(set_("meal_value_usd", lambda i, g: -i["meal_value_usd"])),
        "meal_value_usd_format": paid(set_("meal_value_usd", lambda i, g: round(i["meal_value_usd"], 2) + 0.005)),
        "updated_at_required": set_("updated_at", None),
        "updated_at_type": set_("updated_at", lambda i, g: i["updated_at"].replace("T", " ").rstrip("Z")),
    }


def engagement_mutators(day: date) -> dict:
    def set_(name, fn):
        def mutate(event, rng):
            event[name] = fn(event, rng) if callable(fn) else fn
            return event
        return mutate

    def only(condition, fn):
        def mutate(event, rng):
            return fn(event, rng) if condition(event) else None
        return mutate

    def unidentified(event, rng):
        event["npi"] = None
        event.pop("account_id", None)
        return event

    def not_json(event, rng):
        text = json.dumps(event, separators=(",", ":"))
        return RawLine(rng.choice((text[: len(text) // 2],  # cut off mid-record
                                   json.dumps(list(event.values())),  # an array, not an object
                                   "<html><body>502 Bad Gateway</body></html>")))

    return {
        "event_id_required": set_("event_id", None),
        "event_id_format": set_("event_id", lambda e, g: e["event_id"].replace("-", "")[:20]),
        "occurred_at_required": set_("occurred_at", None),
        "occurred_at_type": set_("occurred_at", lambda e, g: e["occurred_at"][:16].replace("T", " ")),
        "not_future": set_("occurred_at", lambda e, g: ts(at(day + timedelta(days=g.randint(1, 2)), 12))),
        "channel_allowed": set_("channel", "SMS"),
        "action_allowed": set_("action", "FORWARDED"),
        "action_fits_channel": lambda e, g: dict(e, action="DOWNLOADED") if e["channel"] == "WEBINAR"
        else dict(e, action="VISITED") if e["channel"] == "EMAIL" else dict(e, action="SENT"),
        "npi_check_digit": only(lambda e: e.get("npi"), set_("npi", lambda e, g: corrupt_npi(e["npi"]))),
        "sfdc_id_format": only(lambda e: e.get("account_id"),
                               set_("account_id", lambda e, g: e["account_id"][:15] + "AAA"
                                    if e["account_id"][15:] != "AAA" else e["account_id"][:15] + "BBB")),
        "hcp_identified": unidentified,
        "brand_code_required": set_("brand_code", None),
        "content_id_required": set_("content_id", None),
        "content_id_format": set_("content_id", lambda e, g: e["content_id"].replace("-", " ", 1) + ".pdf"),
        "record_json": not_json,
    }


# --- the real sources of the tests -------------------------------------------------------------------
DISPENSE_TABLE = """create table {table} (
    dispense_id bigint, pharmacy_ncpdp text, patient_token text, prescriber_npi text, ndc11 text,
    dispense_date date, fill_type text, quantity numeric, days_supply integer, payer_type text,
    copay_usd numeric, status text, updated_at timestamptz)"""


def fill_dispense_table(conn, lake: Lake, keys: Iterable[str], table: str = "dispense") -> int:
    """Create the hub's `dispense` table (every version of every dispense, no constraints, as the
    replica the puller reads) and load the generated sp_dispense files into it; returns the rows."""
    from psycopg import sql

    name = sql.Identifier(*table.split("."))
    conn.execute(sql.SQL(DISPENSE_TABLE).format(table=name))
    conn.execute(sql.SQL("create index on {table} (updated_at)").format(table=name))
    rows = 0
    copy = sql.SQL("copy {table} ({columns}) from stdin with (format csv, header true)").format(
        table=name, columns=sql.SQL(", ").join(map(sql.Identifier, sp_dispense.COLUMNS)))
    for key in keys:
        data = gzip.decompress(lake.read_bytes(key))
        with conn.cursor() as cursor, cursor.copy(copy) as target:
            target.write(data)
        rows += data.count(b"\n") - 1
    conn.commit()
    return rows


def attendance_items(lake: Lake, keys: Iterable[str]) -> dict[date, list[dict]]:
    """The generated hcp_event items by the day the API files them under (the day they were updated)."""
    out: dict[date, list[dict]] = {}
    for key in keys:
        day = datetime.strptime(key.rsplit("_", 1)[1].removesuffix(".jsonl"), "%Y%m%d").date()
        out[day] = [json.loads(line) for line in lake.read_bytes(key).decode().splitlines()]
    return out


def engagement_records(lake: Lake, keys: Iterable[str]) -> list[bytes]:
    """The generated hcp_engagement records, in file order, as a stream would carry them."""
    return [line for key in keys for line in gzip.decompress(lake.read_bytes(key)).split(b"\n") if line]


def put_engagement_records(kinesis, stream: str, records: list[bytes], batch: int = 500) -> int:
    """PutRecords in batches (the ones a shard refused are sent again); returns the records put."""
    done = 0
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        pending = [{"Data": r, "PartitionKey": f"p{(start + i) % 97}"} for i, r in enumerate(chunk)]
        while pending:
            answer = kinesis.put_records(StreamName=stream, Records=pending)
            pending = [e for e, result in zip(pending, answer["Records"], strict=True) if "ErrorCode" in result]
        done += min(batch, len(records) - start)
    return done

