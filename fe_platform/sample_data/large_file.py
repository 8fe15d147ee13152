"""One large, clean IQVIA delivery for benchmarks: generated in numpy chunks, written by Arrow's CSV writer."""

from __future__ import annotations

import gzip as gzip_module
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fe_platform.lib.feeds import FEEDS
from fe_platform.sample_data import catalog as C

CHUNK_ROWS = 250_000
COMBOS_PER_PRESCRIBER = 8
WEEKS = 13


def _ndcs() -> list[str]:
    out = []
    for b_index, brand in enumerate(C.BRANDS):
        for p_index, _ in enumerate(brand.packs):
            out.append(f"{brand.labeler}{2000 + b_index * 7:04d}{p_index * 10 + 1:02d}")
    return out


def _npis(first9: np.ndarray) -> np.ndarray:
    """Vectorised NPI check digit (Luhn over 80840 + the first 9 digits)."""
    total = np.full(first9.shape, 24, dtype=np.int64)
    rest = first9.copy()
    for i in range(9):  # i = position from the right
        d = rest % 10
        rest //= 10
        if i % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    return first9 * 10 + (10 - total % 10) % 10


def write_large_iqvia(path: Path, rows: int, week_ending: date, seed: int = 7, gzip: bool = False) -> Path:
    """One IQVIA RXDYN_WEEKLY file of `rows` clean rows (13 weeks ending `week_ending`), streamed in chunks.

    Row i belongs to prescriber i // (13 * 8), week (i // 8) % 13 and combination i % 8; the
    combinations of one prescriber are distinct (ndc, payer, channel) triples, so keys are unique.
    """
    path = Path(path)
    ndcs = _ndcs()
    payers = [p for p, _ in C.PAYERS]
    channels = [c for c, _ in C.CHANNELS["FERTILITY"]]
    combos = [(n, p, c) for n in ndcs for p in payers for c in channels]
    n_combos = len(combos)
    step = 101 if n_combos % 101 else 103
    combo_ndc = pa.array([c[0] for c in combos])
    combo_payer = pa.array([c[1] for c in combos])
    combo_channel = pa.array([c[2] for c in combos])
    weeks = pa.array([(week_ending - timedelta(weeks=WEEKS - 1 - w)).isoformat() for w in range(WEEKS)])
    columns = FEEDS["iqvia_rx"].source_columns
    rng = np.random.default_rng(seed)
    options = pacsv.WriteOptions(include_header=False, delimiter="|", quoting_style="none")
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = open(path, "wb")
    out = gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=5) if gzip else raw
    try:
        out.write(("|".join(columns) + "\n").encode())
        for start in range(0, rows, CHUNK_ROWS):
            i = np.arange(start, min(rows, start + CHUNK_ROWS), dtype=np.int64)
            n = len(i)
            per = WEEKS * COMBOS_PER_PRESCRIBER
            prescriber = i // per
            week = (i // COMBOS_PER_PRESCRIBER) % WEEKS
            k = i % COMBOS_PER_PRESCRIBER
            combo = (prescriber * 37 + k * step) % n_combos
            npi = _npis(100_000_000 + (prescriber * 7919) % 200_000_000)  # first digit 1 or 2
            trx = 1 + rng.poisson(2.0, n)
            nrx = rng.binomial(trx, 0.45)
            nbrx = rng.binomial(nrx, 0.4)
            tqty = np.round(trx * rng.choice(np.array([1.0, 1.5, 2.0, 5.0]), n), 1)
            nqty = np.round(tqty * nrx / trx, 1)
            npi_col = pc.cast(pa.array(npi), pa.string())
            npi_col = pc.if_else(pa.array(prescriber % 25 == 0), pa.scalar("", pa.string()), npi_col)
            table = pa.table({
                "prescriber_id": pc.cast(pa.array(10_000_000 + prescriber), pa.string()),
                "npi": npi_col,
                "ndc11": combo_ndc.take(pa.array(combo)),
                "week_ending": weeks.take(pa.array(week)),
                "payer_type": combo_payer.take(pa.array(combo)),
                "channel": combo_channel.take(pa.array(combo)),
                "nrx": pa.array(nrx), "trx": pa.array(trx), "nbrx": pa.array(nbrx),
                "nqty": pa.array(nqty), "tqty": pa.array(tqty),
            })
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, options)
            out.write(sink.getvalue().to_pybytes())
    finally:
        if out is not raw:
            out.close()
        raw.close()
    return path
