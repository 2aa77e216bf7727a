"""Which column of a survey export is which field, and how one row becomes a FeedbackRecord.

A mapping comes from a small YAML file (``--mapping survey.yaml``), from options (``--text Comment
--nps Score``), or from the headers of the file when neither names a column (common survey export
names such as ``comment``, ``score``, ``date``, ``email``). Options override the file.

Identity: ``source_ref`` is ``import:<dataset>:<id>`` when an id column is mapped, else
``import:<hash>`` with the SHA-256 of the mapped values (text, ratings, time, customer, product):
the same row always gives the same ``feedback_id``, so a re-run never duplicates anything.
The e-mail address is turned into ``customer_ref`` (keyed hash) here and never leaves the importer.

Example mapping file::

    dataset: nps-2025            # namespace of ids; default: the file name without extension
    source: webform              # email|webform|ticket|event (default event)
    columns:
      text: Comment
      nps: How likely are you to recommend us?
      date: Submitted At
      email: Email
      id: Response ID
      product: Plan
    date_format: "%d/%m/%Y %H:%M"  # default: ISO 8601 (Excel dates are read as dates)
    timezone: Europe/Berlin        # of dates without an offset (default UTC)
    attributes: [Country, Segment] # extra columns kept in attributes
    empty_text: null               # rows without a comment: rejected (or a text to store instead)
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import ConfigError, RecordError
from pipeline.schema import FeedbackRecord, customer_ref

FIELDS = ("text", "nps", "csat", "stars", "date", "email", "customer", "id", "product", "subject",
          "language", "channel", "tags")
#: Header names recognised when no mapping names a field (compared lower-case, without punctuation).
AUTO: dict[str, tuple[str, ...]] = {
    "text": ("comment", "comments", "feedback", "text", "verbatim", "response", "answer", "message",
             "whatcouldwedobetter", "reason"),
    "nps": ("nps", "npsscore", "score", "likelihoodtorecommend", "recommend", "rating"),
    "csat": ("csat", "csatscore", "satisfaction"),
    "stars": ("stars", "starrating"),
    "date": ("date", "submittedat", "submitted", "createdat", "created", "timestamp", "time", "responsedate",
             "eventtime"),
    "email": ("email", "emailaddress", "mail", "respondentemail"),
    "id": ("id", "responseid", "submissionid", "surveyresponseid", "sourceref"),
    "product": ("product", "plan", "productname"),
}

#: Second pass: a header containing one of these (e.g. "How likely are you to recommend us?").
AUTO_CONTAINS: dict[str, tuple[str, ...]] = {
    "nps": ("recommend", "nps"),
    "csat": ("satisf", "csat"),
    "text": ("comment", "feedback", "couldwedobetter", "improve", "verbatim", "reason"),
    "date": ("submitted", "timestamp", "date"),
    "email": ("email",),
    "id": ("responseid", "submissionid"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class Mapping(BaseModel):
    """Column mapping and conversion rules of one import (validated when loaded)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,100}$")
    source: Literal["email", "webform", "ticket", "event"] = "event"
    channel: str | None = Field(default=None, max_length=500)
    columns: dict[str, str] = Field(default_factory=dict)
    date_format: str | None = None
    timezone: str = "UTC"
    attributes: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=lambda: ["backfill"])
    empty_text: str | None = None

    @field_validator("columns")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; known: {', '.join(FIELDS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @classmethod
    def load(cls, path: Path | None, **overrides: Any) -> Mapping:
        """The mapping of ``path`` (YAML) with ``overrides`` applied; ``columns`` overrides merge."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read the mapping {path}: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: a mapping file is a YAML object (dataset, columns, ...)")
        columns = {**(data.get("columns") or {}), **(overrides.pop("columns", None) or {})}
        data.update({k: v for k, v in overrides.items() if v is not None})
        data["columns"] = columns
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid mapping:\n  " + "\n  ".join(lines)) from None

    def resolve(self, headers: list[str], strict: bool = True) -> Mapping:
        """This mapping with the unnamed fields found among ``headers``; with ``strict`` (a file with
        one header row) a column the mapping names must be among them."""
        missing = [c for c in self.columns.values() if c not in headers]
        if missing and headers and strict:
            raise ConfigError(f"column(s) {missing} not in the file; its columns: {', '.join(headers)}")
        columns = dict(self.columns)
        by_norm = {_norm(h): h for h in headers}
        taken = set(columns.values())
        for field, names in AUTO.items():
            if field in columns:
                continue
            for name in names:
                header = by_norm.get(name)
                if header and header not in taken:
                    columns[field] = header
                    taken.add(header)
                    break
        for field, parts in AUTO_CONTAINS.items():
            if field in columns:
                continue
            header = next((h for p in parts for n, h in by_norm.items() if p in n and h not in taken), None)
            if header:
                columns[field] = header
                taken.add(header)
        if "text" not in columns and self.empty_text is None:
            raise ConfigError("no comment column: name it with --text COLUMN (or `columns: {text: ...}`)")
        return self.model_copy(update={"columns": columns})


# -- conversions ---------------------------------------------------------------------------------
def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_score(value: Any, field: str, low: int, high: int) -> int | None:
    if _blank(value):
        return None
    try:
        number = float(str(value).strip().replace(",", "."))
    except ValueError:
        raise RecordError(f"invalid_{field}", f"{field} {str(value)[:40]!r} is not a number") from None
    if not number.is_integer() or not low <= number <= high:
        raise RecordError(f"invalid_{field}", f"{field} {str(value)[:40]!r} is not a whole number {low}-{high}")
    return int(number)


def parse_time(value: Any, fmt: str | None, tz: str) -> datetime | None:
    if _blank(value):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, int | float) and not isinstance(value, bool) and value > 1e9:
        try:
            return datetime.fromtimestamp(float(value), UTC)  # epoch seconds
        except (ValueError, OverflowError, OSError):
            raise RecordError("invalid_date", f"{value!r} is not a usable epoch time") from None
    else:
        text = str(value).strip()
        try:
            parsed = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError("invalid_date", f"{text[:40]!r} does not match "
                              f"{fmt or 'ISO 8601 (2025-03-01 or 2025-03-01T14:30:00+01:00)'}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(UTC)


def _attr(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)[:1000]


def row_to_record(row: dict[str, Any], mapping: Mapping, key: bytes, dataset: str,
                  received_at: datetime | None = None) -> FeedbackRecord:
    """The record of one export row; raises RecordError(reason, detail) for a row that cannot be used."""
    if "__error__" in row:
        raise row["__error__"]
    cols = mapping.columns

    def get(field: str) -> Any:
        return row.get(cols[field]) if field in cols else None

    text = get("text")
    text = str(text).strip() if not _blank(text) else mapping.empty_text
    nps = parse_score(get("nps"), "nps", 0, 10)
    csat = parse_score(get("csat"), "csat", 1, 5)
    stars = parse_score(get("stars"), "stars", 1, 5)
    if not text and nps is None and csat is None and stars is None:
        raise RecordError("empty_text", "the row has neither a comment nor a score (nps, csat or stars)")
    text = text or ""  # a score-only answer
    event_time = parse_time(get("date"), mapping.date_format, mapping.timezone)
    email, customer = get("email"), get("customer")
    ref = None
    if not _blank(email):
        if "@" not in str(email):
            raise RecordError("invalid_email", "the e-mail column holds no address")
        ref = customer_ref(str(email), key)
    elif not _blank(customer):
        ref = customer_ref(str(customer), key)
    product = None if _blank(get("product")) else str(get("product")).strip()[:500]
    ident = get("id")
    if not _blank(ident):
        source_ref = f"import:{dataset}:{str(ident).strip()}"
    else:
        basis = [text, nps, csat, stars, event_time.isoformat() if event_time else None, ref, product]
        source_ref = "import:" + hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:32]
    tags = list(mapping.tags)
    if not _blank(get("tags")):
        tags += [t.strip()[:100] for t in str(get("tags")).split(",") if t.strip()]
    attributes = {name: _attr(row.get(name)) for name in mapping.attributes if name in row}
    attributes["import_dataset"] = dataset
    fields: dict[str, Any] = {
        "source": mapping.source, "source_ref": source_ref[:500], "text": text,
        "channel": (None if _blank(get("channel")) else str(get("channel"))) or mapping.channel or f"import:{dataset}",
        "customer_ref": ref, "nps_score": nps, "csat_score": csat, "stars": stars, "product": product,
        "subject": None if _blank(get("subject")) else str(get("subject"))[:1000],
        "language": None if _blank(get("language")) else str(get("language")).strip(),
        "tags": list(dict.fromkeys(tags))[:50], "attributes": attributes,
    }
    if event_time is not None:
        fields["event_time"] = event_time
    if received_at is not None:
        fields["received_at"] = received_at
    try:
        return FeedbackRecord(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "record"
        raise RecordError(f"invalid_{where}"[:60], f"{where}: {err['msg']}") from None
