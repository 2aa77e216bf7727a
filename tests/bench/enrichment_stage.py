"""Benchmark stage ``enrichment``: records/s of one core through :meth:`Enricher.enrich`.

Measured in one process, one thread (so: per core), on the deterministic benchmark records of
:mod:`tests.bench.data` where, deterministically, 5% of the texts also carry PII (an e-mail
address, a phone number or a card number) and 5% are replaced by non-English feedback, so that
redaction and language detection are exercised as in real traffic. The baseline, run on the same
texts in the same run, is TextBlob alone: ``TextBlob(text).sentiment``, what the spine did.
Start-up (loading lexicons and the language model) is excluded: every variant is warmed up first.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from pipeline.schema import FeedbackRecord
from tests.bench.core import BenchContext, Result, stage

TARGET_PER_CORE = 5000.0  # records/s (issue 5)
_PII = [" Mail me at jane.doe@example.com.", " Call me on +44 20 7946 0958.",
        " The charge was on card 4111 1111 1111 1111.", " My number is (415) 555-2671."]
_FOREIGN = ["Das Paket kam zu spät an und niemand hat geantwortet.", "La livraison était très rapide, merci !",
            "El producto llegó roto y nadie responde.", "Ottimo servizio, consegna veloce.",
            "De app crasht steeds als ik inlog.", "Посылка пришла с опозданием."]  # noqa: RUF001


def bench_records(n: int, seed: int) -> list[FeedbackRecord]:
    from tests.bench.data import generate

    rng = random.Random(seed + 5)
    out = []
    for b in generate(n, seed=seed, run="enrich"):
        fields = dict(b.fields)
        roll = rng.random()
        if roll < 0.05:
            fields["text"] = fields["text"] + rng.choice(_PII)
        elif roll < 0.10:
            fields["text"] = rng.choice(_FOREIGN)
            fields["language"] = None
        out.append(FeedbackRecord.model_validate(fields))
    return out


def _rates(fns: dict[str, Callable[[FeedbackRecord], object]], records: Sequence[FeedbackRecord],
           chunk: int = 250) -> dict[str, tuple[float, float]]:
    """Per variant: (records per CPU second of this thread, records per wall-clock second).

    The variants run interleaved, ``chunk`` records at a time, so a busy machine slows them alike.
    """
    for fn in fns.values():  # warm-up: lexicons, models, caches
        for r in records[: min(200, len(records))]:
            fn(r)
    cpu = dict.fromkeys(fns, 0.0)
    wall = dict.fromkeys(fns, 0.0)
    for start in range(0, len(records), chunk):
        part = records[start:start + chunk]
        for name, fn in fns.items():
            c, w = time.thread_time(), time.perf_counter()
            for r in part:
                fn(r)
            cpu[name] += time.thread_time() - c
            wall[name] += time.perf_counter() - w
    n = len(records)
    return {name: (n / max(cpu[name], 1e-9), n / max(wall[name], 1e-9)) for name in fns}


@stage("enrichment")
def enrichment(ctx: BenchContext) -> list[Result]:
    from textblob import TextBlob

    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    n = 2000 if ctx.quick else min(ctx.records, 20_000)
    records = bench_records(n, ctx.seed)
    ctx.log(f"enrichment: {n} records, one core")
    regions = ("US", "GB", "DE", "FR")
    enricher = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=regions)
    tb_enricher = Enricher(Taxonomy.load(), analyzer="textblob", phone_regions=regions)
    rates = _rates({"textblob": lambda r: TextBlob(r.text).sentiment, "default": enricher.enrich,
                    "textblob-enricher": tb_enricher.enrich}, records)
    (baseline, baseline_wall), (default, default_wall) = rates["textblob"], rates["default"]
    tb_full = rates["textblob-enricher"][0]
    sample = [enricher.enrich(r) for r in records[:2000]]
    aspects = sum(len(e.aspects) for e in sample) / len(sample)
    redacted = sum(e.redacted for e in sample) / len(sample)
    skipped = sum(e.sentiment.label == "not_assessed" for e in sample) / len(sample)
    notes = (f"per core = records per CPU-second of the one benchmark thread, variants interleaved "
             f"(wall clock: {default_wall:,.0f}/s vs {baseline_wall:,.0f}/s); default analyzer (ensemble) "
             f"incl. redaction, language, sentences, aspects ({aspects:.2f}/record) and categories; "
             f"{redacted:.0%} redacted, {skipped:.0%} not assessed")
    return [
        Result("enrichment", "records_per_s_per_core", round(default, 1), "records/s", round(baseline, 1),
               "TextBlob(text).sentiment alone", notes, target=TARGET_PER_CORE),
        Result("enrichment", "records_per_s_per_core_textblob_analyzer", round(tb_full, 1), "records/s",
               round(baseline, 1), "TextBlob(text).sentiment alone",
               "FEEDBACK_SENTIMENT=textblob with the same redaction, language, aspects and categories"),
    ]
