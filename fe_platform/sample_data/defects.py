"""Row-level defect injection: which rules break in which file, and rows that break exactly one rule.

Every feed has an ordered list of the rules the generator can break. A run spreads that list over
the feed's files (rule k goes to file k mod n), so every rule shows up at least once, then adds
random picks from the same list until about `defect_rate` of the file's rows are defective. A rule
that cannot be applied to a file (no suitable row) is carried over to the next file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

NULLS = {"", "NULL", "null", "N/A"}

# A mutator takes a copy of a clean row and returns it broken for its rule, or None when the row
# does not suit the rule (the injector then tries another row).
Mutator = Callable[[list, random.Random], "list | None"]


def norm(value: str) -> str:
    value = value.strip()
    return "" if value in NULLS else value


class DefectPlanner:
    """Deterministic choice of the rules to break, file by file, for one feed."""

    def __init__(self, rules: Sequence[str], n_files: int, rate: float, rng: random.Random):
        self.rules = list(rules)
        self.n_files = max(1, n_files)
        self.rate = rate
        self.rng = rng
        self.carry: list[str] = []

    def plan(self, file_index: int, n_rows: int) -> list[str]:
        if self.rate <= 0:
            return []
        mandatory = self.carry + [r for k, r in enumerate(self.rules) if k % self.n_files == file_index]
        self.carry = []
        wanted = n_rows * self.rate
        n = int(wanted) + (1 if self.rng.random() < wanted - int(wanted) else 0)
        return mandatory + [self.rng.choice(self.rules) for _ in range(max(0, n - len(mandatory)))]

    def failed(self, rules: list[str]) -> None:
        self.carry.extend(rules)


def inject_in_place(rows: list[list], plan: list[str], mutators: dict[str, Mutator], key_cols: Sequence[int],
                    dup_rule: str, rng: random.Random, attempts: int = 40) -> tuple[Counter, list[str], set]:
    """Break rows of `rows` in place (duplicates are appended). Returns counts, failed rules, bad indexes."""
    counts: Counter = Counter()
    failed: list[str] = []
    bad: set[int] = set()
    keys = {tuple(norm(r[c]) for c in key_cols) for r in rows}
    duplicates = []
    n = len(rows)
    for rule in plan:
        done = False
        for _ in range(attempts if n else 0):
            i = rng.randrange(n)
            if i in bad:
                continue
            if rule == dup_rule:
                bad.add(i)
                duplicates.append(list(rows[i]))
                counts[rule] += 2
                done = True
                break
            new = mutators[rule](list(rows[i]), rng)
            if new is None:
                continue
            key = tuple(norm(new[c]) for c in key_cols)
            old = tuple(norm(rows[i][c]) for c in key_cols)
            if key != old:
                if key in keys:
                    continue
                keys.add(key)
            rows[i] = new
            bad.add(i)
            counts[rule] += 1
            done = True
            break
        if not done:
            failed.append(rule)
    for row in duplicates:
        bad.add(len(rows))
        rows.append(row)
    return counts, failed, bad


def inject_extra_rows(rows: list[list], plan: list[str], mutators: dict[str, Mutator], key_col: int,
                      fresh_key: Callable[[], str], dup_rule: str, prepare: Callable[[list], list],
                      rng: random.Random) -> tuple[Counter, list[str]]:
    """Snapshots: add defective copies of real rows under fresh keys, so the real rows stay clean."""
    counts: Counter = Counter()
    failed: list[str] = []
    extra: list[list] = []
    null_key_used = False
    for rule in plan:
        for _ in range(40):
            base = prepare(list(rng.choice(rows)))
            base[key_col] = fresh_key()
            if rule == dup_rule:
                extra += [base, list(base)]
                counts[rule] += 2
                break
            new = mutators[rule](base, rng)
            if new is None:
                continue
            if norm(new[key_col]) == "":
                if null_key_used:  # two null keys would also be a duplicate key
                    continue
                null_key_used = True
            extra.append(new)
            counts[rule] += 1
            break
        else:
            failed.append(rule)
    for row in extra:
        rows.insert(rng.randrange(len(rows) + 1), row)
    return counts, failed
