"""``feedback eval`` and ``feedback train-categories`` (registered in :mod:`pipeline.cli`).

The eval interface is fixed (other tools call it):
``feedback eval --data FILE [--format csv|tsv|jsonl] --text-column COL --label-column COL
[--task sentiment|category] [--json]``. The analyzer, taxonomy and category model are the ones
the processor would use (``FEEDBACK_SENTIMENT``, ``FEEDBACK_TAXONOMY_FILE``,
``FEEDBACK_CATEGORY_MODEL``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


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
) -> None:
    """Score the enrichment on a labelled file: n, accuracy, macro-F1, per class, confusion matrix."""
    from pipeline.config import ProcessorSettings, load
    from processors.enrich import Enricher
    from processors.evaluation import evaluate, main_json, read_rows, render

    settings = load(ProcessorSettings)
    rows = read_rows(data, fmt.value if fmt else None, text_column, label_column)  # type: ignore[arg-type]
    enricher = Enricher.from_settings(settings)
    report = evaluate(rows, task.value, enricher, progress=True)  # type: ignore[arg-type]
    if as_json:
        main_json(report)
    else:
        typer.echo(f"analyzer={enricher.analyzer_name}  task={task.value}  data={data}")
        render(report, typer.echo)


def train_categories_command(
    data: Annotated[Path, typer.Option("--data", help="Labelled examples (csv, tsv or jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the model (joblib).")],
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Categories; several: 'a; b'.")] = "category",
    fmt: Annotated[FileFormat | None, typer.Option("--format", help="Default: from the file name.")] = None,
    threshold: Annotated[float, typer.Option(min=0.05, max=0.95, help="Probability to assign a category.")] = 0.5,
) -> None:
    """Train the optional category model from analyst-labelled examples (use: FEEDBACK_CATEGORY_MODEL)."""
    from processors.categories_model import train_file

    model = train_file(data, out, text_column, label_column, fmt.value if fmt else None, threshold)
    typer.echo(f"wrote {out}: {len(model.classes)} categories from {model.meta['examples']} examples "
               f"({', '.join(f'{c}={n}' for c, n in model.meta['per_class'].items())})")
