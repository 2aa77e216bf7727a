"""One record the database refuses never stalls a batch, and a stored row is updated only by its origin.

Against SQLite and PostgreSQL: the writer isolates the refused records (the rest of the batch is
committed in one transaction) and returns them with their reasons, without the rows' values; an
update from another origin than the one that wrote a row is refused and returned, the row unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pipeline.errors import RecordError
from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from sinks.warehouse.writer import WarehouseWriter
from tests.integration.warehouse_data import DIALECTS, fresh_engine

pytestmark = pytest.mark.integration
POISON_REF = "c_" + "0b" * 16  # a customer reference in the keyed-hash form


def item(ref: str, text_: str = "The parcel came late", csat: int | None = None, **fields: object) -> EnrichedFeedback:
    return EnrichedFeedback(
        source_ref=ref, text=text_, csat_score=csat, customer_ref=POISON_REF, **fields,  # type: ignore[arg-type]
        sentiment=Sentiment(polarity=-0.4, subjectivity=0.5, label="negative"),
        categories=[CategoryTag(name="delivery", confidence=0.9)])


def stored(engine: Engine, where: str = "1=1") -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT * FROM feedback WHERE {where}")).mappings().all()
    return {r["source_ref"]: dict(r) for r in rows}


def poisons(kind: str) -> list[EnrichedFeedback]:
    """Records that pass validation (or skipped it) yet the database refuses for their content."""
    out = [item("poison-null-text").model_copy(update={"text": None})]  # NOT NULL: an IntegrityError
    if kind == "postgresql":  # SQLite stores any length and NUL characters
        out.append(item("poison-nul", product="secret-product\x00x"))
        out.append(item("poison-lang").model_copy(update={"language": "en-" + "-".join(["abcdefgh"] * 5)}))
    return out


@pytest.mark.parametrize("size", [12, 150])  # below and above the COPY threshold on PostgreSQL
@pytest.mark.parametrize("kind", DIALECTS)
def test_refused_records_are_isolated_and_the_rest_written(kind: str, size: int, tmp_path: Path) -> None:
    good = [item(f"good-{n}") for n in range(size)]
    bad = poisons(kind)
    batch = good[:3] + bad[:1] + good[3:size // 2] + bad[1:] + good[size // 2:]
    with fresh_engine(kind, tmp_path) as engine:
        result = WarehouseWriter(engine).write_batch(batch)
        assert result.written == size
        assert sorted(r.item.source_ref for r in result.rejected) == sorted(b.source_ref for b in bad)
        reasons = {r.item.source_ref: r for r in result.rejected}
        assert reasons["poison-null-text"].reason == "db_integrity_error"
        if kind == "postgresql":
            assert reasons["poison-nul"].reason == "db_data_error"
            assert reasons["poison-lang"].reason == "db_data_error"
            assert "character varying(35)" in reasons["poison-lang"].detail
        for r in result.rejected:
            assert "secret-product" not in r.detail and "parcel" not in r.detail  # no row values
        rows = stored(engine)
        assert set(rows) == {g.source_ref for g in good}
        with engine.connect() as conn:
            cats = conn.execute(text("SELECT count(*) FROM feedback_categories")).scalar_one()
            customer = conn.execute(text("SELECT feedback_count FROM customers WHERE customer_ref = :r"),
                                    {"r": POISON_REF})
            assert (cats, customer.scalar_one()) == (size, size)


@pytest.mark.parametrize("kind", DIALECTS)
def test_write_raises_record_error_after_writing_the_rest(kind: str, tmp_path: Path) -> None:
    with fresh_engine(kind, tmp_path) as engine:
        with pytest.raises(RecordError, match="db_integrity_error"):
            WarehouseWriter(engine).write([item("a"), *poisons(kind)[:1], item("b")])
        assert set(stored(engine)) == {"a", "b"}


@pytest.mark.parametrize("size", [1, 100])
@pytest.mark.parametrize("kind", DIALECTS)
def test_an_update_from_another_origin_is_refused(kind: str, size: int, tmp_path: Path) -> None:
    """The reported attack: a stored CSAT-1 complaint rewritten as "Great service" with CSAT 5."""
    complaint = item("form-1:complaint", "Nobody called me back", csat=1, source="webform")
    others = [item(f"form-1:{n}", source="webform") for n in range(size - 1)]
    forged = item("form-1:complaint", "Great service, thanks!", csat=5, source="webform", origin="event:mallory")
    with fresh_engine(kind, tmp_path) as engine:
        writer = WarehouseWriter(engine)
        assert writer.write_batch([complaint, *others]).written == size
        result = writer.write_batch([forged, *others])  # others: re-delivered by their own origin
        assert result.written == size - 1
        assert [(r.item.source_ref, r.reason) for r in result.rejected] == [("form-1:complaint", "origin_mismatch")]
        assert "'webform'" in result.rejected[0].detail and "'event:mallory'" in result.rejected[0].detail
        row = stored(engine, "source_ref = 'form-1:complaint'")["form-1:complaint"]
        assert (row["text"], row["csat_score"], row["origin"]) == ("Nobody called me back", 1, "webform")
        # the same origin still updates its own row
        fixed = item("form-1:complaint", "Nobody called me back, twice", csat=1, source="webform")
        assert writer.write_batch([fixed, *others]).rejected == ()
        assert stored(engine, "source_ref = 'form-1:complaint'")["form-1:complaint"]["text"] == \
            "Nobody called me back, twice"
        with engine.connect() as conn:
            cats = conn.execute(text("SELECT count(*) FROM feedback_categories")).scalar_one()
        assert cats == size
