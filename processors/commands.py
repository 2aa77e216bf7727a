"""``feedback eval`` and ``feedback train-categories`` (registered in :mod:`pipeline.cli`).

The eval interface is fixed (other tools call it):
``feedback eval --data FILE [--format csv|tsv|jsonl] --text-column COL --label-column COL
[--task sentiment|category] [--json]``. The analyzer, taxonomy and category model are the ones
the processor would use (``FEEDBACK_SENTIMENT``, ``FEEDBACK_TAXONOMY_FILE``,
``FEEDBACK_CATEGORY_MODEL``, and the active trained models of ``FEEDBACK_MODEL_DIR``);
``--model VERSION|PATH`` evaluates one trained model instead.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.errors import ConfigError
from processors.learning.commands import train_categories_command, train_sentiment_command

__all__ = ["eval_command", "train_categories_command", "train_sentiment_command"]


class FileFormat(StrEnum):
    csv = "csv"
    tsv = "tsv"
    jsonl = "jsonl"


class TaskName(StrEnum):
    sentiment = "sentiment"
    category = "category"


def eval_command(
    data: Annotated[Path, typer.Option("--data", help="Labelled file (csv, tsv or jsonl).")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column (or JSON field) with the text.")],
    label_column: Annotated[str, typer.Option("--label-column", help="Column (or JSON field) with the label.")],
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="Default: from the file name.")] = None,
    task: Annotated[TaskName, typer.Option("--task", help="sentiment (default) or category.")] = TaskName.sentiment,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: n, accuracy, macro_f1, "
                                                         "per_class, confusion.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="A trained model's version (`feedback models "
                                              "list`) or file; default: the active models.")] = None,
) -> None:
    """Score the enrichment on a labelled file: n, accuracy, macro-F1, per class, confusion matrix."""
    from pipeline.cli import _logging
    from pipeline.config import ProcessorSettings, load
    from processors.enrich import Enricher
    from processors.evaluation import evaluate, main_json, read_rows, render

    settings = load(ProcessorSettings)
    _logging(settings, "eval")  # logs to stderr: stdout carries the report (--json)
    rows = read_rows(data, fmt.value if fmt else None, text_column, label_column)  # type: ignore[arg-type]
    enricher = Enricher.from_settings(settings) if model is None else _enricher_for(settings, model)
    report = evaluate(rows, task.value, enricher, progress=True)  # type: ignore[arg-type]
    if as_json:
        main_json(report)
    else:
        typer.echo(f"analyzer={enricher.analyzer_name}  model={enricher.model_name}  task={task.value}  data={data}")
        render(report, typer.echo)


def _enricher_for(settings: Any, model: str) -> Any:
    """An enricher that runs one trained model: a version in the model directory, or a file."""
    from processors.categories_model import CategoryModel
    from processors.enrich import Enricher
    from processors.model_store import ModelStore
    from processors.sentiment_trained import TrainedAnalyzer, load_sentiment_model
    from processors.taxonomy import Taxonomy

    store = ModelStore(settings.models_path)
    path, sha, kind = Path(model), None, None
    if not path.is_file():
        card = store.card(model)  # ConfigError naming the version when there is none
        path, sha, kind = store.file(model), card["sha256"], card["kind"]
    taxonomy = Taxonomy.load(settings.taxonomy_file)
    regions = tuple(settings.phone_regions)
    if kind == "category" or (kind is None and not _is_sentiment_file(path)):
        return Enricher(taxonomy, settings.neutral_band, settings.sentiment, CategoryModel.load(path, sha), regions,
                        settings.ensemble_neutral_band)
    analyzer = TrainedAnalyzer(load_sentiment_model(path, sha), path.stem)
    return Enricher(taxonomy, settings.neutral_band, analyzer, None, regions, settings.ensemble_neutral_band)


def _is_sentiment_file(path: Path) -> bool:
    from processors.linear_text import LinearTextModel

    try:
        LinearTextModel.load(path)
    except ConfigError:
        return False
    return True
