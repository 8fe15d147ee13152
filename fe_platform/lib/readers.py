"""Readers: a landing file in, chunks of text rows out, in bounded memory.

Every reader yields Arrow tables of text whose columns are the contract's column names
(matched case-insensitively after trimming), every value a trimmed string or null
(empty, `NULL`, `null` and `N/A` mean null). A file that cannot be read at all raises
`UnreadableFile`, whose message names the file and the problem.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from fe_platform.lib.feeds import Feed
from fe_platform.lib.lake import Lake
from fe_platform.lib.rules import RECORD_TEXT

NULL_LITERALS = ["", "NULL", "null", "N/A"]
# The CSV reader parses 1 MiB blocks and reads a few ahead (that readahead is what bounds memory);
# the rules then run on chunks of about CHUNK_ROWS rows, which amortises their per-call cost.
BLOCK_SIZE = 1 << 20
CHUNK_ROWS = 150_000
HEADER_PEEK = 1 << 16


class UnreadableFile(Exception):
    """The whole file is rejected: it cannot be parsed as its feed's format."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass
class Delivery:
    """An opened landing file: its header, mapped onto the contract's columns."""

    feed: Feed
    lake: Lake
    key: str
    header: list[str]  # the names as delivered
    mapping: dict[str, str]  # delivered name -> contract column
    extra_columns: list[str] = field(default_factory=list)  # schema drift: kept in raw, not validated
    _rows: list[list] | None = None  # fx and xlsx: the parsed rows

    def chunks(self) -> Iterator[pa.Table]:
        """Text tables of the contract's columns, in file order."""
        wanted = self.feed.source_columns
        if self._rows is not None:
            yield from self._row_chunks(wanted)
        elif self.feed.format == "jsonl":
            yield from self._jsonl_chunks(wanted)
        else:
            yield from self._csv_chunks(wanted)

    def _jsonl_chunks(self, wanted: list[str]) -> Iterator[pa.Table]:
        """One row per non-blank line. A line that is not a JSON object is a row of nulls with its text in
        `_record_text` (the rules quarantine it as `record_json`); keys the contract does not name are
        schema drift."""
        extra: dict[str, None] = {}
        columns: dict[str, list] = {name: [] for name in [*wanted, RECORD_TEXT]}

        def table() -> pa.Table:
            out = _normalize(pa.table({name: pa.array(columns[name], pa.string()) for name in wanted}))
            out = out.append_column(RECORD_TEXT, pa.array(columns[RECORD_TEXT], pa.string()))
            for values in columns.values():
                values.clear()
            return out

        try:
            with _open_stream(self) as stream:
                text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="\n")
                for line in text:
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        record = None
                    if not isinstance(record, dict):
                        for name in wanted:
                            columns[name].append(None)
                        columns[RECORD_TEXT].append(line.rstrip("\r\n"))
                    else:
                        fields = {str(k).strip().lower(): v for k, v in record.items()}
                        for name in wanted:
                            columns[name].append(_json_text(fields.get(name)))
                        columns[RECORD_TEXT].append(None)
                        extra.update((k, None) for k in fields if k not in columns)
                    if len(columns[RECORD_TEXT]) >= CHUNK_ROWS:
                        yield table()
        except UnicodeDecodeError as exc:
            raise UnreadableFile(self.key, f"bytes that are not valid UTF-8 ({exc.reason})") from exc
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            if not _is_format_error(exc):
                raise
            raise UnreadableFile(self.key, _arrow_problem(exc)) from exc
        if columns[RECORD_TEXT]:
            yield table()
        self.extra_columns[:] = sorted(extra)

    def _row_chunks(self, wanted: list[str]) -> Iterator[pa.Table]:
        position = {name: self.header.index(raw) for raw, name in self.mapping.items()}
        for start in range(0, max(len(self._rows), 1), CHUNK_ROWS):
            rows = self._rows[start:start + CHUNK_ROWS]
            if not rows and start:
                break
            table = pa.table({
                name: pa.array([r[position[name]] if position[name] < len(r) else None for r in rows],
                               pa.string())
                for name in wanted
            })
            yield _normalize(table)

    def _csv_chunks(self, wanted: list[str]) -> Iterator[pa.Table]:
        reverse = {name: raw for raw, name in self.mapping.items()}
        include = [reverse[name] for name in wanted]
        try:
            with _open_stream(self) as stream:
                reader = pcsv.open_csv(
                    stream,
                    read_options=pcsv.ReadOptions(block_size=BLOCK_SIZE),
                    parse_options=pcsv.ParseOptions(delimiter=self.feed.delimiter,
                                                    newlines_in_values=self.feed.multiline_values),
                    convert_options=pcsv.ConvertOptions(
                        column_types={raw: pa.string() for raw in self.header},
                        include_columns=include, null_values=NULL_LITERALS, strings_can_be_null=True),
                )
                pending, rows = [], 0
                for batch in reader:
                    pending.append(batch)
                    rows += batch.num_rows
                    if rows >= CHUNK_ROWS:
                        yield _normalize(pa.Table.from_batches(pending).rename_columns(wanted), literals_parsed=True)
                        pending, rows = [], 0
                if pending:
                    yield _normalize(pa.Table.from_batches(pending).rename_columns(wanted), literals_parsed=True)
        except (pa.ArrowInvalid, OSError) as exc:
            if not _is_format_error(exc):
                raise
            raise UnreadableFile(self.key, _arrow_problem(exc)) from exc


def _arrow_problem(exc: Exception) -> str:
    """What is wrong with the file, in words that never quote its cells (they may hold PII)."""
    text = str(exc)
    fields = re.search(r"Expected \d+ columns?, got \d+", text)
    if "invalid UTF8" in text:
        return "bytes that are not valid UTF-8"
    if fields:
        return f"rows with the wrong number of fields ({fields.group(0)})"
    if "gzip" in text.lower() or "zlib" in text.lower() or "inflate" in text.lower():
        return "not a valid gzip file"
    return f"not parseable as delimited text ({text.split(':')[0]})"


def _is_format_error(exc: Exception) -> bool:
    """A parse or decompression failure is the file's fault; other I/O errors (network, permissions) are
    not, and must fail the run so it can be retried rather than reject a good file."""
    if isinstance(exc, pa.ArrowInvalid):
        return True
    return any(word in str(exc).lower() for word in ("gzip", "zlib", "inflate", "decompress"))


def _normalize(table: pa.Table, literals_parsed: bool = False) -> pa.Table:
    """Trimmed text with the null literals as nulls. When the parser already turned the literals into
    nulls, a column only needs work if some value may have spaces around it (` NULL ` among them)."""
    columns = {}
    for name in table.column_names:
        values = table[name]
        if literals_parsed and not _may_need_trim(values):
            columns[name] = values
        else:
            trimmed = pc.utf8_trim_whitespace(values)
            columns[name] = pc.if_else(pc.is_in(trimmed, pa.array(NULL_LITERALS)), None, trimmed)
    return pa.table(columns)


def _may_need_trim(values: pa.ChunkedArray) -> bool:
    """Whether some value may start or end with whitespace, judged on bytes: a column without a space,
    control or non-ASCII byte (Unicode has spaces too) anywhere needs no trimming, which is the common
    case for codes, numbers and dates; otherwise the first and last byte of each value decide."""
    if not pa.types.is_string(values.type):  # (32-bit offsets below)
        return True
    for chunk in values.chunks:
        _, offsets, data = chunk.buffers()
        if data is None:
            continue
        offsets = np.frombuffer(offsets, dtype=np.int32)[chunk.offset:chunk.offset + len(chunk) + 1]
        data = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]
        spacey = (data <= 32) | (data >= 128)
        if not spacey.any():
            continue
        starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
        filled = ends > starts
        if spacey[starts[filled]].any() or spacey[ends[filled] - 1].any():
            return True
    return False


def _open_stream(delivery: Delivery):
    raw = delivery.lake.open(delivery.key)
    if delivery.key.endswith(".gz"):
        return pa.CompressedInputStream(raw, "gzip")
    return raw


def _map_header(feed: Feed, key: str, header: list[str]) -> tuple[dict[str, str], list[str]]:
    """Delivered names onto contract columns; the file is unreadable when one is missing or doubled."""
    wanted = set(feed.source_columns)
    mapping, extra, seen = {}, [], {}
    for raw in header:
        name = raw.strip().lower()
        if name in seen:
            raise UnreadableFile(key, f"column {name!r} appears twice in the header")
        seen[name] = raw
        if name in wanted:
            mapping[raw] = name
        else:
            extra.append(raw)
    missing = [c for c in feed.source_columns if c not in seen]
    if missing:
        problem = f"missing required column(s) {', '.join(missing)}"
        if len(header) == 1:
            problem += f"; the header has a single field: wrong delimiter (expected {feed.delimiter!r})?"
        elif not mapping:
            problem += "; the first row looks like data: is the header missing?"
        raise UnreadableFile(key, problem)
    return mapping, extra


def _peek_text(delivery_key: str, lake: Lake) -> str:
    """The first bytes of the file as text: it is unreadable when empty, not gzip (.gz) or not UTF-8."""
    try:
        with lake.open(delivery_key) as f:
            stream = pa.CompressedInputStream(f, "gzip") if delivery_key.endswith(".gz") else f
            head = stream.read(HEADER_PEEK)
    except (pa.ArrowInvalid, OSError) as exc:
        if not _is_format_error(exc):
            raise
        raise UnreadableFile(delivery_key, _arrow_problem(exc)) from exc
    if not head.strip():
        raise UnreadableFile(delivery_key, "the file is empty")
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=len(head) < HEADER_PEEK)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(delivery_key, f"bytes that are not valid UTF-8 ({exc.reason} at byte "
                                           f"{exc.start})") from exc
    return text


def _peek_header(delivery_key: str, feed: Feed, lake: Lake) -> list[str]:
    text = _peek_text(delivery_key, lake)
    first = next(csv.reader(io.StringIO(text), delimiter=feed.delimiter), None)
    if not first or not any(v.strip() for v in first):
        raise UnreadableFile(delivery_key, "no header row")
    return first


def _json_text(value) -> str | None:
    """A JSON value as the text the rules read: numbers as written, booleans as true/false."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _cell(value) -> str | None:
    """An XLSX cell as text: numbers stored as numbers or as text read alike."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _read_xlsx(feed: Feed, lake: Lake, key: str) -> Delivery:
    from python_calamine import CalamineWorkbook

    data = lake.read_bytes(key)
    if not data:
        raise UnreadableFile(key, "the file is empty")
    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
        rows = [[_cell(v) if v != "" else None for v in row] for row in sheet.iter_rows()]
    except Exception as exc:  # calamine raises its own types for every way a workbook is broken
        raise UnreadableFile(key, f"not a readable XLSX workbook ({exc})") from exc
    if not rows or not any(rows[0]):
        raise UnreadableFile(key, "no header row on the first sheet")
    header = [v or "" for v in rows[0]]
    mapping, extra = _map_header(feed, key, header)
    return Delivery(feed, lake, key, header, mapping, extra, _rows=rows[1:])


class _JsonObject(dict):
    """A JSON object that keeps every key/value pair, so a currency quoted twice is two rows (both then
    quarantined as `duplicate_key`) rather than one silently dropped."""

    def __init__(self, pairs: list[tuple]):
        super().__init__(pairs)
        self.pairs = pairs


def _read_fx_json(feed: Feed, lake: Lake, key: str) -> Delivery:
    data = lake.read_bytes(key)
    if not data.strip():
        raise UnreadableFile(key, "the file is empty")
    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=_JsonObject)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFile(key, f"not valid JSON ({exc})") from exc
    if not isinstance(body, dict) or not isinstance(body.get("rates"), dict):
        raise UnreadableFile(key, 'not an exchange-rate body: expected {"base", "date", "rates": {...}}')
    missing = [k for k in ("base", "date") if not isinstance(body.get(k), str)]
    if missing:
        raise UnreadableFile(key, f"the body lacks {', '.join(missing)}")
    header = feed.source_columns
    rows = [[body["date"], body["base"], str(quote), None if rate is None else str(rate)]
            for quote, rate in body["rates"].pairs]
    return Delivery(feed, lake, key, header, {c: c for c in header}, [], _rows=rows)


def open_delivery(feed: Feed, lake: Lake, key: str) -> Delivery:
    """Open a landing file of `feed`; raises UnreadableFile when it cannot be read at all."""
    filename = key.rsplit("/", 1)[-1]
    if feed.match(filename) is None:
        raise UnreadableFile(key, f"the file name does not match the {feed.name} pattern "
                                  f"{feed.file_pattern!r}")
    if feed.format == "fx_json":
        return _read_fx_json(feed, lake, key)
    if feed.format == "jsonl":
        _peek_text(key, lake)
        return Delivery(feed, lake, key, feed.source_columns, {c: c for c in feed.source_columns})
    if feed.format == "xlsx_or_csv" and filename.endswith(".xlsx"):
        return _read_xlsx(feed, lake, key)
    header = _peek_header(key, feed, lake)
    mapping, extra = _map_header(feed, key, header)
    return Delivery(feed, lake, key, header, mapping, extra)
