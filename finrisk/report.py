"""The analysts' daily report: the day's alerts with their reasons, each flagged customer's recent
behaviour, data quality and the model, as one self-contained HTML file (inline CSS and charts).

`load_report_data` reads the data directory and the MLflow registry; `render_report` turns what it
read into an HTML string and touches nothing else."""
from __future__ import annotations

import base64
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from finrisk.config import Settings, get_settings
from finrisk.io import DataLayout, has_parquet, scan_partitioned
from finrisk.schema import BUSINESS_TZ

IST = ZoneInfo(BUSINESS_TZ)
HISTORY_DAYS = 30
MAX_CUSTOMERS = 12
ALERT_COLUMNS = ("txn_id", "customer_id", "ts", "amount_paise", "score")
HEADLINE_METRICS = (
    ("auc", "AUC"),
    ("average_precision", "Average precision"),
    ("card_precision_at_100", "Card precision@100"),
    ("recall_at_100_per_day", "Recall at 100 alerts/day"),
    ("test_frauds", "Frauds in test window"),
    ("test_rows", "Test transactions"),
)
COUNT_METRICS = {"test_frauds", "test_rows"}
TWIN_FIELDS = (
    ("txn_count", "past transactions"),
    ("p50_paise", "median amount"),
    ("p90_paise", "p90 amount"),
    ("p99_paise", "p99 amount"),
    ("spend_30d_paise", "spend, 30 d"),
    ("net_flow_30d_paise", "net flow, 30 d"),
    ("night_count", "night transactions"),
    ("device_count", "devices"),
    ("last_city", "last city"),
    ("spend_trend_7d_vs_30d", "spend 7 d / 30 d"),
)
PLOT_ORDER = ("pr_curve", "score_distribution", "recall_per_typology", "feature_importance", "roc_curve")
TEMPLATES = Path(__file__).parent / "templates"


class ReportError(ValueError):
    """The report cannot be made for this day; the message says why and what to run first."""


# --- formatting ------------------------------------------------------------------------------------

def indian_grouping(whole: int) -> str:
    """12345678 -> '1,23,45,678': the last three digits, then groups of two (lakh, crore)."""
    digits = str(abs(whole))
    head, tail = digits[:-3], digits[-3:]
    groups = [head[max(0, end - 2):end] for end in range(len(head), 0, -2)][::-1]
    return ("-" if whole < 0 else "") + ",".join([*groups, tail])


def format_inr(paise: int) -> str:
    """Exact rupees from integer paise: 12345600 -> '₹1,23,456.00'."""
    rupees, rest = divmod(abs(int(paise)), 100)
    return f"{'-' if paise < 0 else ''}₹{indian_grouping(rupees)}.{rest:02d}"


def format_ist(ts: datetime, pattern: str = "%d %b %Y, %H:%M") -> str:
    return ts.astimezone(IST).strftime(pattern) + " IST"


def parse_day(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise ReportError(f"DATE must be a business date like 2026-03-01, got {value!r}") from None


# --- what the report shows -------------------------------------------------------------------------

@dataclass
class QualityPanel:
    by_reason: pl.DataFrame          # reason, rows, rows_on_day
    quarantined_rows: int
    quarantined_on_day: int
    sources: int
    validation: list[dict] | None    # expectation, success, unexpected_count
    validation_path: Path | None
    data_docs: Path | None


@dataclass
class ModelPanel:
    name: str
    tracking_uri: str
    champion_version: int | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    champion_run_id: str | None = None
    decision: str | None = None
    versions: list[dict] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)  # name -> base64 PNG from the champion's MLflow run
    note: str = ""


@dataclass
class ReportData:
    day: date
    data_dir: Path
    scores: pl.DataFrame      # every scored transaction of the day
    alerts: pl.DataFrame      # the alert list, best first
    history: pl.DataFrame     # flagged customers' transactions over the last HISTORY_DAYS days
    customers: pl.DataFrame   # flagged customers shown: customer_id, alerts, top_score, amount_paise
    flagged_customers: int    # all distinct customers on the alert list
    twins: pl.DataFrame | None
    quality: QualityPanel
    model: ModelPanel
    generated_at: datetime
    history_days: int = HISTORY_DAYS


# --- loading ---------------------------------------------------------------------------------------

def load_report_data(
    data_dir: Path,
    day: date,
    settings: Settings | None = None,
    history_days: int = HISTORY_DAYS,
    max_customers: int = MAX_CUSTOMERS,
) -> ReportData:
    settings = settings or get_settings()
    layout = DataLayout(Path(data_dir))
    scores_path = layout.partition(layout.scores, day.isoformat())
    if not scores_path.exists():
        raise ReportError(
            f"no scores for {day} (looked for {scores_path}); score that day first "
            "(`finrisk nightly`, or the score flow for that date)"
        )
    scores = _with_reasons(pl.read_parquet(scores_path))
    if scores.height == 0:
        raise ReportError(f"the scores for {day} in {scores_path} are empty: nothing was scored that day")
    missing = [c for c in ALERT_COLUMNS if c not in scores.columns]
    if missing:
        raise ReportError(f"{scores_path} lacks the columns {missing}; re-run scoring for {day}")

    alerts_path = layout.partition(layout.alerts, day.isoformat())
    alerts = (
        _with_reasons(pl.read_parquet(alerts_path))
        if alerts_path.exists()
        else scores.sort("score", "txn_id", descending=[True, False]).head(settings.alerts_per_day)
    ).sort("score", "txn_id", descending=[True, False])

    per_customer = (
        alerts.group_by("customer_id")
        .agg(pl.len().alias("alerts"), pl.col("score").max().alias("top_score"), pl.col("amount_paise").sum())
        .sort(["top_score", "customer_id"], descending=[True, False])
    )
    customers = per_customer.head(max_customers)
    shown = customers.get_column("customer_id").to_list()
    return ReportData(
        day=day,
        data_dir=Path(data_dir),
        scores=scores,
        alerts=alerts,
        history=_history(layout, day, shown, history_days, alerts),
        customers=customers,
        flagged_customers=per_customer.height,
        twins=_twins(layout, day, shown),
        quality=_quality(layout, day),
        model=_model(settings),
        generated_at=datetime.now(timezone.utc),
        history_days=history_days,
    )


def _with_reasons(frame: pl.DataFrame) -> pl.DataFrame:
    if "reasons" not in frame.columns:  # scores written before reason codes existed
        return frame.with_columns(pl.lit([], pl.List(pl.String)).alias("reasons"))
    return frame


def _history(layout: DataLayout, day: date, customers: list[str], days: int, alerts: pl.DataFrame) -> pl.DataFrame:
    columns = ["txn_id", "customer_id", "ts", "amount_paise"]
    if not has_parquet(layout.transactions):
        return alerts.filter(pl.col("customer_id").is_in(customers)).select(columns)
    first = (day - timedelta(days=days - 1)).isoformat()
    return (
        scan_partitioned(layout.transactions)
        .filter(pl.col("date").is_between(pl.lit(first), pl.lit(day.isoformat())))
        .filter(pl.col("customer_id").is_in(customers))
        .select(columns)
        .sort("ts")
        .collect()
    )


def _twins(layout: DataLayout, day: date, customers: list[str]) -> pl.DataFrame | None:
    """The customers' twin profiles from the latest snapshot on or before the day (a twin "as of D"
    summarises behaviour before D), when twins are built: processed/twins/date=D/profiles.parquet."""
    base = layout.root / "processed" / "twins"
    days = sorted(
        p.name.removeprefix("date=") for p in base.glob("date=*")
        if p.name.removeprefix("date=") <= day.isoformat() and (p / "profiles.parquet").exists()
    )
    if not days:
        return None
    profiles = pl.read_parquet(base / f"date={days[-1]}" / "profiles.parquet")
    if "customer_id" not in profiles.columns:
        return None
    return profiles.filter(pl.col("customer_id").is_in(customers)).with_columns(pl.lit(days[-1]).alias("twin_date"))


def _quality(layout: DataLayout, day: date) -> QualityPanel:
    """Quarantined rows by failed expectation (all of them, and those dated on the day)."""
    files = sorted(layout.quarantine.rglob("*.parquet")) if layout.quarantine.exists() else []
    by_reason = pl.DataFrame(schema={"reason": pl.String, "rows": pl.UInt32, "rows_on_day": pl.UInt32})
    total = on_day = 0
    if files:
        bad = (
            pl.scan_parquet(files, schema={"reasons": pl.List(pl.String), "ts": pl.Datetime("us", "UTC")},
                            missing_columns="insert", extra_columns="ignore")
            .with_columns(
                (pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).dt.date() == day).fill_null(False).alias("on_day")
            )
            .collect()
        )
        by_reason = (
            bad.explode("reasons")
            .group_by(pl.col("reasons").fill_null("(no reason recorded)").alias("reason"))
            .agg(pl.len().alias("rows"), pl.col("on_day").sum().alias("rows_on_day"))
            .sort(["rows", "reason"], descending=[True, False])
        )
        total, on_day = bad.height, int(bad.get_column("on_day").sum())
    validation, validation_path = _validation_summary(layout, day)
    return QualityPanel(by_reason, total, on_day, len(files), validation, validation_path, data_docs_page(layout.root))


def _validation_summary(layout: DataLayout, day: date) -> tuple[list[dict] | None, Path | None]:
    """The validation summary stored for the day, else the newest one (a list of
    {expectation, success, unexpected_count}, possibly under a "results" key)."""
    found = list(layout.validation.rglob("*.json")) if layout.validation.exists() else []
    # The day's own summary first, then the newest.
    for path in sorted(found, key=lambda p: (day.isoformat() in str(p), p.stat().st_mtime), reverse=True):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = payload.get("results", payload.get("summary")) if isinstance(payload, dict) else payload
        if isinstance(rows, list) and rows and all(isinstance(r, dict) and "expectation" in r for r in rows):
            return [
                {"expectation": str(r["expectation"]), "success": bool(r.get("success")),
                 "unexpected_count": int(r.get("unexpected_count") or 0)}
                for r in rows
            ], path
    return None, None


def data_docs_page(data_dir: Path) -> Path | None:
    """The Great Expectations Data Docs site under DATA_DIR/gx/, when one has been built."""
    base = Path(data_dir) / "gx"
    pages = sorted(base.rglob("index.html"), key=lambda p: len(p.parts)) if base.exists() else []
    return pages[0].resolve() if pages else None


def _model(settings: Settings) -> ModelPanel:
    panel = ModelPanel(settings.mlflow_model_name, settings.tracking_uri)
    store = settings.tracking_uri.removeprefix("sqlite:///")
    if settings.tracking_uri.startswith("sqlite:///") and not Path(store).exists():
        panel.note = f"no MLflow store at {store}: no model has been trained yet"
        return panel
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tty bars in a batch report
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from models.registry import configure, list_versions

    try:
        configure(settings.tracking_uri, settings.artifact_root)
        versions = list_versions(settings.mlflow_model_name)
        panel.versions = versions.to_dicts()
        champions = [v for v in panel.versions if "champion" in v["aliases"].split(",")]
        if not champions:
            panel.note = f"no champion registered for {settings.mlflow_model_name!r}"
            return panel
        champion = champions[0]
        panel.champion_version, panel.champion_run_id = champion["version"], champion["run_id"]
        run = MlflowClient().get_run(champion["run_id"])
        panel.champion_metrics = dict(run.data.metrics)
        panel.decision = run.data.tags.get("decision")
    except (MlflowException, OSError) as exc:
        panel.note = f"MLflow registry at {settings.tracking_uri} could not be read: {exc}"
        return panel
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plots = Path(download_artifacts(run_id=panel.champion_run_id, artifact_path="plots", dst_path=tmp))
            found = {p.stem: p for p in plots.glob("*.png")}
            for name in sorted(found, key=lambda n: (PLOT_ORDER.index(n) if n in PLOT_ORDER else len(PLOT_ORDER), n)):
                panel.plots[name] = base64.b64encode(found[name].read_bytes()).decode()
    except (MlflowException, OSError):
        pass  # a run without plots still has its metrics
    return panel


# --- rendering -------------------------------------------------------------------------------------

def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["inr"] = format_inr
    env.filters["grouped"] = indian_grouping
    env.filters["ist"] = format_ist
    env.filters["metric"] = _metric
    env.filters["label"] = lambda name: name.replace("_", " ")
    return env


def _metric(value, count: bool = False) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if count:
        return indian_grouping(round(value))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _display_alerts(alerts: pl.DataFrame) -> list[dict]:
    frame = alerts.with_row_index("rank", offset=1).with_columns(
        pl.col("ts").dt.convert_time_zone(BUSINESS_TZ).dt.strftime("%H:%M:%S").alias("time_ist"),
        *(pl.lit(None, pl.String).alias(c) for c in ("channel", "counterparty") if c not in alerts.columns),
        *(pl.lit(None, pl.Float64).alias(c) for c in ("anomaly_score",) if c not in alerts.columns),
    )
    return frame.to_dicts()


def _twin_row(twins: pl.DataFrame | None, customer: str) -> dict | None:
    if twins is None:
        return None
    rows = twins.filter(pl.col("customer_id") == customer).head(1).to_dicts()
    return rows[0] if rows else None


def _twin_fields(twin: dict | None) -> list[tuple[str, str]]:
    """The twin's headline fields as label/value pairs, in analyst terms."""
    if twin is None:
        return []
    shown = []
    for name, label in TWIN_FIELDS:
        value = twin.get(name)
        if value is None or (isinstance(value, float) and value != value):
            continue
        if name.endswith("_paise"):
            text = format_inr(round(value))
        elif isinstance(value, int):
            text = indian_grouping(value)
        elif isinstance(value, float):
            text = f"{value:.2f}"
        else:
            text = str(value)
        shown.append((label, text))
    return shown


def render_report(data: ReportData, on_chart: Callable[[str], None] | None = None) -> str:
    """The whole report as one HTML string; on_chart is called after each chart (for a progress bar)."""
    from finrisk.report_charts import customer_chart, hourly_alerts_chart, score_distribution_chart

    tick = on_chart or (lambda _name: None)
    alerted = data.alerts.get_column("txn_id").to_list()
    cutoff = data.alerts.get_column("score").min()
    overview = {
        "scores": Markup(score_distribution_chart(data.scores.get_column("score"), cutoff)),
        "hours": Markup(hourly_alerts_chart(data.scores, alerted)),
    }
    tick("overview")
    reasons = (
        data.alerts.select(pl.col("reasons").list.explode().str.split(": ").list.first().alias("reason"))
        .drop_nulls().group_by("reason").len().sort(["len", "reason"], descending=[True, False]).head(8)
    )
    customers = []
    for customer in data.customers.iter_rows(named=True):
        cid = customer["customer_id"]
        mine = data.alerts.filter(pl.col("customer_id") == cid)
        twin = _twin_row(data.twins, cid)
        chart = customer_chart(
            data.history.filter(pl.col("customer_id") == cid), mine.get_column("txn_id").to_list(),
            data.day, data.history_days, salt=cid, twin=twin,
        )
        customers.append(
            {
                **customer,
                "chart": Markup(chart),
                "history_rows": data.history.filter(pl.col("customer_id") == cid).height,
                "reasons": sorted(set(mine.get_column("reasons").explode().drop_nulls().to_list())),
                "twin": _twin_fields(twin),
            }
        )
        tick(cid)
    versions = data.scores.get_column("model_version") if "model_version" in data.scores.columns else pl.Series([])
    context = {
        "day": data.day,
        "day_label": data.day.strftime("%A, %d %B %Y"),
        "data_dir": str(data.data_dir.resolve()),
        "generated": format_ist(data.generated_at),
        "scored": data.scores.height,
        "alerts": _display_alerts(data.alerts),
        "alert_amount": int(data.alerts.get_column("amount_paise").sum()),
        "flagged_customers": data.flagged_customers,
        "customers": customers,
        "history_days": data.history_days,
        "twins_date": data.twins.get_column("twin_date")[0] if data.twins is not None and data.twins.height else None,
        "top_reasons": reasons.to_dicts(),
        "overview": overview,
        "quality": data.quality,
        "quarantine": data.quality.by_reason.to_dicts(),
        "validation_failed": sum(1 for r in data.quality.validation or [] if not r["success"]),
        "data_docs_uri": data.quality.data_docs.as_uri() if data.quality.data_docs else None,
        "model": data.model,
        "headline_metrics": [
            (label, _metric(value, count=key in COUNT_METRICS))
            for key, label in HEADLINE_METRICS if (value := data.model.champion_metrics.get(key)) is not None
        ],
        "scored_versions": versions.unique().sort().to_list(),
    }
    return _environment().get_template("report.html.j2").render(**context)


def write_report(html: str, out: Path) -> Path:
    """Write atomically: a reader never sees half a report."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def default_report_path(data_dir: Path, day: date) -> Path:
    return Path(data_dir) / "reports" / f"report-{day.isoformat()}.html"


def build_report(data_dir: Path, day: date, out: Path | None = None, settings: Settings | None = None) -> Path:
    """Load, render and write the report of one day; returns where it was written."""
    data = load_report_data(data_dir, day, settings)
    return write_report(render_report(data), out or default_report_path(data_dir, day))
