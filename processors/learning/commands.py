"""``feedback train-sentiment``, ``feedback train-categories`` (versioned) and ``feedback models
list|activate|rollback`` (registered in :mod:`pipeline.cli`).

Bad input (a missing column, an unknown label, a single class, too few rows per class) is a
ConfigError: a clear message, exit 2, and nothing written.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.errors import ConfigError

models_app = typer.Typer(help="Trained models: list them, activate a version, roll back.", no_args_is_help=True)


class FileFormat(StrEnum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class ScoreScale(StrEnum):
    nps = "nps"
    csat = "csat"
    stars = "stars"


def _settings(component: str = "learning") -> Any:
    """The settings, and logs configured to go to stderr (stdout carries the result, e.g. --json)."""
    from pipeline.cli import _logging
    from pipeline.config import LearningSettings, load

    settings = load(LearningSettings)
    _logging(settings, component)
    return settings


def _eval_cache() -> Path:
    import os
    import tempfile

    return Path(os.environ.get("FEEDBACK_EVAL_CACHE", Path(tempfile.gettempdir()) / "feedback-eval-data"))


def _warehouse(settings: Any) -> Any:
    from processors.learning.catalog import engine_for, has_table

    engine = engine_for(settings.existing_database_url())
    if engine is None or not has_table(engine, "feedback"):
        raise ConfigError(f"no feedback table in the warehouse {settings.database_url}: run `feedback migrate`")
    return engine


def _print(report: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), sort_keys=True, default=str))
        return
    typer.echo(f"{report.kind}: trained on {report.n_train} rows, held out {report.n_holdout} "
               f"({', '.join(f'{c}={n}' for c, n in report.counts['per_class'].items())})")
    typer.echo(f"holdout macro-F1: new {report.macro_f1_new:.4f}, current {report.macro_f1_current:.4f} "
               f"({report.current_model})")
    for name, r in report.public_sets.items():
        typer.echo(f"  public set {name} (report split, n={r['n']}): new {r['macro_f1_new']:.4f}, "
                   f"current {r['macro_f1_current']:.4f}")
    typer.echo(report.decision)
    if report.model_version:
        typer.echo(f"model {report.model_version}: {report.file} ({report.catalog})")


def train_sentiment_command(
    from_warehouse: Annotated[bool, typer.Option("--from-warehouse", help="Scored feedback and analyst "
                                                 "corrections in the warehouse.")] = False,
    since: Annotated[str | None, typer.Option(help="With --from-warehouse: feedback from this date on "
                                              "(YYYY-MM-DD, event time).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A training file (csv, tsv or jsonl).")] = None,
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="Default: from the file name.")] = None,
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str | None, typer.Option("--label-column", help="negative|neutral|positive.")] = None,
    score_column: Annotated[str | None, typer.Option("--score-column", help="A score to label from.")] = None,
    score_scale: Annotated[ScoreScale | None, typer.Option("--score-scale", help="nps, csat or stars.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Activate even when not better on the holdout.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Train and report; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: n_train, n_holdout, macro_f1_new, "
                                          "macro_f1_current, activated, model_version, ...")] = False,
) -> None:
    """Train a sentiment model from your own scored feedback; activate it only when it beats the current one."""
    from processors.learning.train import train_sentiment
    from processors.learning.weak import read_file

    if from_warehouse == (data is not None):
        raise ConfigError("name the training data: --from-warehouse or --data FILE (one of them)")
    settings = _settings()
    if from_warehouse:
        from processors.learning.source import sentiment_rows

        try:
            start = date.fromisoformat(since) if since else None
        except ValueError:
            raise ConfigError(f"--since: {since!r} is not a date (YYYY-MM-DD)") from None
        rows = sentiment_rows(_warehouse(settings), start)
        source = f"warehouse{f' since {start}' if start else ''}"
    else:
        assert data is not None
        rows = read_file(data, fmt.value if fmt else None, text_column, label_column, score_column,
                         score_scale.value if score_scale else None)
        source = data.name
    report = train_sentiment(rows, settings, force=force, dry_run=dry_run, source=source,
                             public_cache=_eval_cache(), log=lambda m: typer.echo(m, err=True))
    _print(report, as_json)


def train_categories_command(
    data: Annotated[Path | None, typer.Option("--data", help="Labelled examples (csv, tsv or jsonl).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write a plain model file here (no versioning, "
                                             "no gate; use with FEEDBACK_CATEGORY_MODEL).")] = None,
    from_warehouse: Annotated[bool, typer.Option("--from-warehouse", help="Add the analysts' category "
                                                 "corrections in the warehouse.")] = False,
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Categories; several: 'a; b'.")] = "category",
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="Default: from the file name.")] = None,
    threshold: Annotated[float, typer.Option(min=0.05, max=0.95, help="Probability to assign a category.")] = 0.5,
    min_per_class: Annotated[int, typer.Option(min=2, help="Fewest examples of a category.")] = 10,
    force: Annotated[bool, typer.Option("--force", help="Activate even when not better on the holdout.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Train and report; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (as train-sentiment).")] = False,
) -> None:
    """Train the category model from labelled examples (and corrections); versioned and gated unless --out."""
    from processors.categories_model import parse_labels
    from processors.evaluation import read_rows
    from processors.learning.categories import train_categories, train_file

    if out is not None:
        if data is None:
            raise ConfigError("--out needs --data")
        model = train_file(data, out, text_column, label_column, fmt.value if fmt else None, threshold)
        typer.echo(f"wrote {out}: {len(model.classes)} categories from {model.meta['examples']} examples "
                   f"({', '.join(f'{c}={n}' for c, n in model.meta['per_class'].items())})")
        return
    if data is None and not from_warehouse:
        raise ConfigError("name the training data: --data FILE and/or --from-warehouse")
    settings = _settings()
    texts: list[str] = []
    labels: list[list[str]] = []
    if data is not None:
        for text, lab in read_rows(data, fmt.value if fmt else None, text_column, label_column):  # type: ignore[arg-type]
            texts.append(text)
            labels.append(parse_labels(lab))
    if from_warehouse:
        from processors.learning.source import corrections

        for row in corrections(_warehouse(settings), "category"):
            texts.append(row.text)
            labels.append(parse_labels(row.label))
    report = train_categories(texts, labels, settings, threshold=threshold, min_per_class=min_per_class,
                              force=force, dry_run=dry_run, source=data.name if data else "warehouse",
                              log=lambda m: typer.echo(m, err=True))
    _print(report, as_json)


@models_app.command("list")
def models_list(
    kind: Annotated[str | None, typer.Option(help="sentiment or category (default: both).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every trained model, oldest first, with its holdout scores and which one is active."""
    from processors.model_store import ModelStore

    settings = _settings()
    store = ModelStore(settings.models_path)
    active = {k: (store.active(k) or {}).get("version") for k in ("sentiment", "category")}
    rows = []
    for card in store.cards(kind):  # type: ignore[arg-type]
        m = card.get("metrics", {})
        rows.append({"version": card["version"], "kind": card["kind"], "created_at": card["created_at"],
                     "n_train": card["n_train"], "n_holdout": card["n_holdout"],
                     "macro_f1_new": m.get("macro_f1_new"), "macro_f1_current": m.get("macro_f1_current"),
                     "active": active.get(card["kind"]) == card["version"]})
    if as_json:
        typer.echo(json.dumps({"models": rows, "active": active, "dir": str(store.root)}))
        return
    if not rows:
        typer.echo(f"no trained models in {store.root}: the shipped default is in use")
    for r in rows:
        typer.echo(f"{'*' if r['active'] else ' '} {r['version']:<44} {r['kind']:<9} train={r['n_train']:<6} "
                   f"holdout={r['n_holdout']:<5} macro_f1={r['macro_f1_new']} (was {r['macro_f1_current']})")
    for k, v in active.items():
        if v is None:
            typer.echo(f"  {k}: shipped default active")


@models_app.command("activate")
def models_activate(version: Annotated[str, typer.Argument(help="A version from `feedback models list`.")]) -> None:
    """Make VERSION its kind's active model (the processor picks it up within FEEDBACK_MODEL_POLL_SECONDS)."""
    from processors.learning import catalog
    from processors.model_store import ModelStore

    settings = _settings()
    pointer = ModelStore(settings.models_path).activate(version)
    catalog.set_active(catalog.engine_for(settings.database_url), pointer["kind"], version)
    typer.echo(f"activated {version} ({pointer['kind']})")


@models_app.command("rollback")
def models_rollback(kind: Annotated[str, typer.Option(help="sentiment or category.")] = "sentiment") -> None:
    """Re-activate the model that was active before (or the shipped default when there was none)."""
    from processors.learning import catalog
    from processors.model_store import KINDS, ModelStore

    if kind not in KINDS:
        raise ConfigError(f"--kind must be one of {', '.join(KINDS)}")
    settings = _settings()
    pointer = ModelStore(settings.models_path).rollback(kind)  # type: ignore[arg-type]
    catalog.set_active(catalog.engine_for(settings.database_url), kind, pointer["version"] if pointer else None)
    typer.echo(f"{kind}: {pointer['version'] if pointer else 'shipped default'} is active now")
