"""The synthetic world the feeds describe: products, territories, HCP accounts, IQVIA prescribers.

Built once per run from a seeded `random.Random`; the feed writers read it and move it forward
in time (territory rep changes, account specialty/territory changes).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from fe_platform.lib.identifiers import make_npi, make_sfdc_id, npi_check_digit
from fe_platform.sample_data import catalog as C


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute,
                                                                         seconds=second)


def weighted(rng: random.Random, pairs) -> str:
    names = [p[0] for p in pairs]
    weights = [p[-1] for p in pairs]
    return rng.choices(names, weights)[0]


@dataclass
class Product:
    ndc11: str
    sap_material: str
    brand: C.Brand
    units_per_pack: int

    def row(self) -> list[str]:
        b = self.brand
        return [self.ndc11, self.sap_material, b.code, b.name, b.molecule, b.market, b.manufacturer,
                "true" if b.is_own else "false", str(self.units_per_pack)]


@dataclass
class Account:
    account_id: str
    npi: str
    first_name: str
    last_name: str
    specialty: str
    email: str
    phone: str
    address: str
    city: str
    state: str
    zip: str
    territory_id: str
    pdrp_opt_out: bool
    is_active: bool
    last_modified: datetime

    def row(self) -> list[str]:
        return [self.account_id, self.npi, self.first_name, self.last_name, self.specialty, self.email,
                self.phone, self.address, self.city, self.state, self.zip, self.territory_id,
                "true" if self.pdrp_opt_out else "false", "true" if self.is_active else "false",
                ts(self.last_modified)]


@dataclass
class Prescriber:
    prescriber_id: str
    npi: str  # "" when IQVIA has none
    market: str | None
    in_crm: bool
    combos: list = field(default_factory=list)  # (ndc11, payer, channel, weekly probability, scale)


@dataclass
class Territory:
    territory_id: str
    name: str
    district_id: str
    rep_id: str
    rep_name: str

    def row(self) -> list[str]:
        district = next(d for d in C.DISTRICTS if d[0] == self.district_id)
        region = next(r for r in C.REGIONS if r[0] == district[2])
        return [self.territory_id, self.name, district[0], district[1], region[0], region[1], self.rep_id,
                self.rep_name]


class World:
    def __init__(self, rng: random.Random, hcps: int, start: date):
        self.rng = rng
        self.used_ids: set[str] = set()
        self.used_npis: set[str] = set()
        self.products = self._products()
        self.brand_codes = [b.code for b in C.BRANDS]
        self.own_brands = {m: [b.code for b in C.BRANDS if b.is_own and b.market == m]
                           for m in ("FERTILITY", "ENDOCRINOLOGY")}
        self.territories = [Territory(tid, name, dist, *self._rep()) for tid, name, dist in C.TERRITORIES]
        for t in rng.sample(self.territories, 2):  # two vacancies to start with
            t.rep_id, t.rep_name = "", ""
        self.accounts = [self._account(start) for _ in range(hcps)]
        self.prescribers = self._prescribers(hcps)

    # identifiers -------------------------------------------------------------------------------
    def sfdc_id(self, prefix: str) -> str:
        while True:
            value = make_sfdc_id(self.rng, prefix)
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def npi(self) -> str:
        while True:
            value = make_npi(self.rng)
            if value not in self.used_npis:
                self.used_npis.add(value)
                return value

    def name(self) -> tuple[str, str]:
        return self.rng.choice(C.FIRST_NAMES), self.rng.choice(C.LAST_NAMES)

    def _rep(self) -> tuple[str, str]:
        first, last = self.name()
        return self.sfdc_id("005"), f"{first} {last}"

    # products ----------------------------------------------------------------------------------
    def _products(self) -> list[Product]:
        out = []
        for b_index, brand in enumerate(C.BRANDS):
            for p_index, units in enumerate(brand.packs):
                ndc = f"{brand.labeler}{2000 + b_index * 7:04d}{p_index * 10 + 1:02d}"
                material = f"FE-{100000 + b_index * 100 + p_index}" if brand.is_own else ""
                out.append(Product(ndc, material, brand, units))
        return out

    def new_pack(self, week_index: int) -> Product:
        """A pack listed in the master in week `week_index` (not yet sold), so every snapshot differs."""
        b_index = week_index % len(C.BRANDS)
        brand = C.BRANDS[b_index]
        ndc = f"{brand.labeler}{8000 + week_index:04d}{11 + b_index:02d}"
        material = f"FE-{200000 + week_index}" if brand.is_own else ""
        return Product(ndc, material, brand, self.rng.choice((2, 3, 6, 12)))

    # accounts ----------------------------------------------------------------------------------
    def _account(self, start: date) -> Account:
        rng = self.rng
        first, last = self.name()
        territory = rng.choice(self.territories).territory_id
        city, state, zip3 = rng.choice(C.PLACES[territory])
        specialty = weighted(rng, list(C.SPECIALTY_WEIGHTS.items()))
        street = f"{rng.randint(1, 9999)} {rng.choice(C.STREETS)}"
        r = rng.random()
        if r < 0.12:
            street += f", Suite {rng.randint(100, 950)}"  # a comma: quoted field
        elif r < 0.15:
            street += f"\nBuilding {rng.choice('ABCD')}"  # a line break inside a field
        elif r < 0.17:
            street = f'"The Pavilion" {street}'  # quotes inside a field
        email_user = f"{first[0]}{last}".lower()
        email_user = "".join(ch for ch in email_user if ch.isalnum()) or "dr"
        email = f"{email_user}{rng.randint(1, 99)}@{rng.choice(C.CLINIC_DOMAINS)}" if rng.random() < 0.9 else ""
        phone = f"({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}" if rng.random() < 0.93 else ""
        npi = self.npi() if specialty != "NP_PA" or rng.random() < 0.5 else ""
        return Account(
            account_id=self.sfdc_id("001"), npi=npi if rng.random() > 0.02 else "", first_name=first,
            last_name=last, specialty=specialty, email=email, phone=phone, address=street, city=city,
            state=state, zip=f"{zip3}{rng.randint(0, 99):02d}", territory_id=territory,
            pdrp_opt_out=rng.random() < 0.04, is_active=rng.random() > 0.03,
            last_modified=at(start, 0) - timedelta(days=rng.randint(7, 400), seconds=rng.randint(0, 86399)),
        )

    def extra_account(self, territory_id: str, start: date) -> Account:
        account = self._account(start)
        account.territory_id = territory_id
        return account

    def change_accounts(self, when: datetime, share: float) -> None:
        """SCD2 material: a few HCPs move territory or change specialty."""
        rng = self.rng
        for account in rng.sample(self.accounts, max(1, round(len(self.accounts) * share))):
            if rng.random() < 0.5:
                account.territory_id = rng.choice(self.territories).territory_id
                account.city, account.state, zip3 = rng.choice(C.PLACES[account.territory_id])
                account.zip = f"{zip3}{rng.randint(0, 99):02d}"
            else:
                account.specialty = weighted(rng, list(C.SPECIALTY_WEIGHTS.items()))
            account.last_modified = when + timedelta(seconds=rng.randint(0, 7200))

    def change_territories(self) -> None:
        """Each week a territory gets a new rep (a never-seen id, so each snapshot differs) and,
        sometimes, a rep leaves and the territory goes vacant."""
        rng = self.rng
        vacant = [t for t in self.territories if not t.rep_id]
        target = rng.choice(vacant) if vacant and rng.random() < 0.6 else rng.choice(self.territories)
        target.rep_id, target.rep_name = self._rep()
        if rng.random() < 0.3:
            leaving = rng.choice([t for t in self.territories if t.rep_id and t is not target])
            leaving.rep_id, leaving.rep_name = "", ""

    # IQVIA prescribers -------------------------------------------------------------------------
    def _prescribers(self, hcps: int) -> list[Prescriber]:
        rng = self.rng
        ids = rng.sample(range(1_000_000, 99_999_999), hcps * 2)
        out = []
        for account in self.accounts:
            if account.npi and rng.random() < 0.85:
                out.append(Prescriber(str(ids.pop()), account.npi, C.SPECIALTY_MARKET.get(account.specialty), True))
        for _ in range(round(hcps * 0.12)):  # prescribers the CRM does not know
            out.append(Prescriber(str(ids.pop()), self.npi(), rng.choice((None, "FERTILITY", "ENDOCRINOLOGY")),
                                  False))
        for _ in range(round(hcps * 0.03)):  # IQVIA without an NPI
            out.append(Prescriber(str(ids.pop()), "", rng.choice(("FERTILITY", "ENDOCRINOLOGY")), False))
        by_market = {m: [p for p in self.products if p.brand.market == m] for m in ("FERTILITY", "ENDOCRINOLOGY")}
        for p in out:
            combos = set()
            for _ in range(rng.randint(2, 6)):
                market = p.market or rng.choice(("FERTILITY", "ENDOCRINOLOGY"))
                products = by_market[market]
                product = rng.choices(products, [x.brand.weight / len(x.brand.packs) for x in products])[0]
                payer = weighted(rng, C.PAYERS)
                channel = weighted(rng, C.CHANNELS[market])
                combos.add((product.ndc11, payer, channel))
            p.combos = [(ndc, payer, channel, rng.uniform(0.25, 0.65), rng.uniform(0.5, 3.0),
                         self.units(ndc)) for ndc, payer, channel in sorted(combos)]
        return out

    def units(self, ndc: str) -> int:
        return next(p.units_per_pack for p in self.products if p.ndc11 == ndc)


def corrupt_npi(npi: str) -> str:
    """The same NPI with a wrong check digit (a typo)."""
    return npi[:9] + str((npi_check_digit(npi[:9]) + 1) % 10)


def bad_npi(rng: random.Random) -> str:
    first9 = str(rng.choice((1, 2))) + "".join(rng.choices(string.digits, k=8))
    good = npi_check_digit(first9)
    return first9 + str((good + rng.randint(1, 9)) % 10)


def bad_sfdc_id(value: str) -> str:
    """Same 18 characters class, wrong case checksum."""
    suffix = value[15:]
    first = "A" if suffix[0] != "A" else "B"
    return value[:15] + first + suffix[1:]
