"""Prefect tasks: what a person looks at after a run: the day's HTML report and the data-quality
summary, published as artifacts in the Prefect UI."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from finrisk.io import DataLayout
from finrisk.report import build_report, data_docs_page


@task(name="daily-report")
def write_daily_report(data_dir: Path, day: str) -> str:
    """The analysts' HTML report of the day, linked from the run's artifacts."""
    path = build_report(Path(data_dir), date.fromisoformat(day)).resolve()
    get_run_logger().info("daily report for %s written to %s", day, path)
    create_link_artifact(
        key="daily-report",
        link=path.as_uri(),
        link_text=f"Daily fraud report {day}",
        description=f"Alerts with reasons, flagged customers, data quality and the model for {day}: {path}",
    )
    return str(path)


def data_quality_markdown(ingest: dict, data_docs: Path | None, quarantine_dir: Path) -> str:
    lines = [
        "## Data quality of this ingest",
        "",
        "| rows in | loaded | quarantined | duplicates |",
        "| ---: | ---: | ---: | ---: |",
        f"| {ingest.get('rows_in', 0):,} | {ingest.get('loaded', 0):,} | {ingest.get('quarantined', 0):,} "
        f"| {ingest.get('duplicates', 0):,} |",
        "",
    ]
    reasons = ingest.get("quarantine_reasons") or {}
    if reasons:
        lines += ["| failed expectation | rows |", "| --- | ---: |"]
        lines += [f"| {reason} | {rows:,} |" for reason, rows in sorted(reasons.items(), key=lambda kv: -kv[1])]
        lines += ["", f"Quarantined rows, with their reasons: `{quarantine_dir}`"]
    else:
        lines.append("Every new row passed the expectation suite.")
    lines.append("")
    lines.append(f"[Great Expectations Data Docs]({data_docs.as_uri()})" if data_docs else "No Data Docs built yet.")
    return "\n".join(lines)


@task(name="data-quality-summary")
def publish_data_quality(data_dir: Path, ingest: dict) -> None:
    """Counts and quarantine reasons of an ingest, with a link to the Data Docs when they exist."""
    create_markdown_artifact(
        key="data-quality",
        markdown=data_quality_markdown(ingest, data_docs_page(data_dir), DataLayout(Path(data_dir)).quarantine),
        description="Rows in = loaded + quarantined + duplicates; why rows were quarantined",
    )
