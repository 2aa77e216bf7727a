"""Benchmark of the trained sentiment model: training time and enrichment speed with it active.

``python -m tests.bench.learning_stage [--records N] [--train N] [--json FILE]``

* Training: ``N`` (default 20,000) weakly labelled rows, the deterministic benchmark records of
  :mod:`tests.bench.data` with an NPS score (weak label from the score, as ``feedback
  train-sentiment`` does), fitted by :func:`processors.linear_text.fit`; CPU seconds of this
  process's one thread (the fit is single-threaded) and wall-clock seconds.
* Enrichment: records per CPU-second of one thread through :meth:`Enricher.enrich` with the shipped
  default analyzer (the same-run baseline) and with the trained model active (through the same
  :class:`~processors.sentiment_trained.SwitchingAnalyzer` path the processor uses), the variants
  interleaved 250 records at a time on the enrichment benchmark's records (5% with PII, 5% not
  English), so a busy machine slows both alike. Start-up is excluded (both are warmed up).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_PER_CORE = 5000.0  # records/s with a trained model active (issue 17)


def training_rows(n: int) -> tuple[list[str], list[str]]:
    from processors.learning.weak import weak_label
    from tests.bench.data import generate

    texts, labels = [], []
    seed = 101
    while len(texts) < n:
        for b in generate(n, seed=seed, run="learn"):
            nps = b.fields.get("nps_score")
            if nps is not None and len(texts) < n:
                texts.append(b.fields["text"])
                labels.append(weak_label(nps, "nps") or "neutral")
        seed += 1
    return texts, labels


def run(records: int, train_n: int) -> dict[str, Any]:
    from processors.enrich import Enricher
    from processors.linear_text import fit
    from processors.model_store import ModelStore
    from processors.taxonomy import Taxonomy
    from tests.bench.enrichment_stage import _rates, bench_records

    texts, labels = training_rows(train_n)
    cpu, wall = time.thread_time(), time.perf_counter()
    model = fit(texts, labels)
    fit_cpu, fit_wall = time.thread_time() - cpu, time.perf_counter() - wall
    with tempfile.TemporaryDirectory(prefix="feedback-learning-bench-") as tmp:
        store = ModelStore(Path(tmp))
        path = Path(tmp) / ".candidate.joblib"
        sha = model.save(path)
        version = "sentiment-bench"
        path.replace(store.file(version))
        store.write_card({"version": version, "kind": "sentiment", "created_at": "2026-01-01T00:00:00+00:00",
                          "sha256": sha, "file": store.file(version).name, "n_train": train_n, "n_holdout": 0})
        store.activate(version)
        regions = ("US", "GB", "DE", "FR")
        default = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=regions)
        trained = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=regions, model_dir=Path(tmp))
        recs = bench_records(records, 1)
        assert trained.enrich(recs[0]).sentiment.model == version
        load_before = os.getloadavg()[0]
        rates = _rates({"default": default.enrich, "trained": trained.enrich}, recs)
        load_after = os.getloadavg()[0]
    return {"machine": f"{platform.machine()}, Python {platform.python_version()}", "train_rows": train_n,
            "features": len(model.terms), "fit_cpu_seconds": round(fit_cpu, 2), "fit_wall_seconds": round(fit_wall, 2),
            "records": records, "default_per_core": round(rates["default"][0], 1),
            "trained_per_core": round(rates["trained"][0], 1), "default_wall": round(rates["default"][1], 1),
            "trained_wall": round(rates["trained"][1], 1), "target_per_core": TARGET_PER_CORE,
            "target_met": rates["trained"][0] >= TARGET_PER_CORE,
            "load_average_1min": [round(load_before, 2), round(load_after, 2)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="records enriched per variant")
    parser.add_argument("--train", type=int, default=20_000, help="training rows")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.records, args.train)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
