"""Check digits of the identifiers the feeds carry: NPI (Luhn) and Salesforce 18-character IDs."""

from __future__ import annotations

import random
import re
import string

SFDC_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_NPI = re.compile(r"[12]\d{9}")
_SFDC = re.compile(r"[0-9A-Za-z]{18}")


def npi_check_digit(first9: str) -> int:
    """The 10th digit of an NPI: Luhn over `80840` + the first 9 digits."""
    total = 24  # the Luhn contribution of the 80840 prefix
    for i, ch in enumerate(reversed(first9)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    return bool(_NPI.fullmatch(value)) and npi_check_digit(value[:9]) == int(value[9])


def make_npi(rng: random.Random) -> str:
    first9 = str(rng.choice((1, 2))) + "".join(rng.choices(string.digits, k=8))
    return first9 + str(npi_check_digit(first9))


def sfdc_suffix(id15: str) -> str:
    """The 3-character case checksum that turns a 15-character Salesforce ID into 18."""
    out = []
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out.append(SFDC_SUFFIX_ALPHABET[bits])
    return "".join(out)


def is_valid_sfdc_id(value: str) -> bool:
    return bool(_SFDC.fullmatch(value)) and sfdc_suffix(value[:15]) == value[15:]


def make_sfdc_id(rng: random.Random, prefix: str = "001") -> str:
    id15 = prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=15 - len(prefix)))
    return id15 + sfdc_suffix(id15)
