"""finrisk deploy / report: register and serve the Prefect deployments; write the analysts' daily report."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from finrisk.cli_common import console, DataDir, fail as _fail
from finrisk.config import get_settings


def prefect_api_url() -> str | None:
    """The Prefect API the deployments go to: PREFECT_API_URL, else the local server when it is up.
    Must run before Prefect is first imported in this process: Prefect reads its settings once."""
    from finrisk.services import use_prefect_server_if_running

    use_prefect_server_if_running(get_settings())
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or None


def check_prefect_api() -> str | None:
    """None when the API answers, else why not."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    return None if error is None else f"{type(error).__name__}: {error}"


def serve_deployments(deployments, limit: int = 1, run_once: bool = False) -> None:
    """Run the deployments' scheduled and ad-hoc flow runs in this process (until interrupted, or
    for one poll when run_once: it waits for the runs it started)."""
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    runner = Runner(name="finrisk", limit=limit)
    for deployment in deployments:
        runner.add_deployment(deployment)
    try:
        asyncio.run(runner.start(run_once=run_once))
    except (KeyboardInterrupt, TerminationSignal):
        console.print("stopped serving; the nightly schedule is paused until `finrisk deploy` runs again")


def register(app: typer.Typer) -> None:
    @app.command()
    def deploy(
        serve: Annotated[bool, typer.Option(
            "--serve/--no-serve", help="Stay up and execute the deployments' runs (default), or only register them.",
        )] = True,
        source: Annotated[Optional[Path], typer.Option(
            help="Raw source folder the forms start with (default: DATA_DIR/raw).",
        )] = None,
        mapping: Annotated[Optional[Path], typer.Option(help="Mapping YAML the forms start with.")] = None,
        # 2: the every-minute score-recent runs go on while one long run (the nightly) works.
        limit: Annotated[int, typer.Option(min=1, help="Flow runs executed at the same time when serving.")] = 2,
        data_dir: DataDir = None,
    ) -> None:
        """Register the nightly deployment (02:00 Asia/Kolkata) and one ad-hoc deployment per sub-flow
        on the Prefect server, then serve them: scheduled runs and runs started from the UI execute here."""
        api_url = prefect_api_url()
        if not api_url:
            _fail(
                "no Prefect server: run `finrisk services up` (starts one on 127.0.0.1:4200) "
                "or set PREFECT_API_URL to your Prefect server or Prefect Cloud workspace"
            )
        problem = check_prefect_api()
        if problem:
            _fail(f"the Prefect API at {api_url} does not answer ({problem}); start it with `finrisk services up`")

        import httpx
        from prefect.exceptions import PrefectHTTPStatusError

        from flows.deployments import FORMS, build_deployments

        root = (data_dir or get_settings().data_dir).resolve()
        deployments = build_deployments(root, source, mapping)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            console=console, transient=True,
        ) as progress:
            task = progress.add_task("registering deployments", total=len(deployments))
            for deployment in deployments:
                progress.update(task, description=f"registering {deployment.flow_name}/{deployment.name}")
                try:
                    deployment.apply()
                except (PrefectHTTPStatusError, httpx.HTTPError) as exc:
                    _fail(f"the Prefect API at {api_url} refused {deployment.flow_name}/{deployment.name}: {exc}")
                progress.advance(task)
        console.print(f"registered {len(deployments)} deployments on {api_url}:")
        for d in deployments:
            schedule = ", ".join(f"{s.schedule.cron} {s.schedule.timezone}" for s in d.schedules) or "ad hoc"
            full_name = f"{d.flow_name}/{d.name}"
            console.print(f"  {full_name:<48} {schedule:<24} form: {FORMS[d.flow_name].__name__}",
                          soft_wrap=True, highlight=False)
        ui = api_url.removesuffix("/api")
        console.print(f"Trigger a run: {ui}/deployments -> a deployment -> Run -> Custom run (the form)")
        if not serve:
            console.print("registered only: runs wait until `finrisk deploy` is serving them")
            return
        console.print(
            f"serving {len(deployments)} deployments; Ctrl+C stops (the nightly schedule pauses until the next start)"
        )
        serve_deployments(deployments, limit=limit)

    @app.command()
    def report(
        day: Annotated[str, typer.Argument(metavar="DATE", help="Business date (Asia/Kolkata), e.g. 2026-03-01.")],
        out: Annotated[Optional[Path], typer.Option(
            help="HTML file to write (default: DATA_DIR/reports/report-DATE.html).",
        )] = None,
        data_dir: DataDir = None,
    ) -> None:
        """Write the day's report for analysts: one self-contained HTML file with the alerts and their
        reasons, a chart per flagged customer, data quality and the champion model."""
        from finrisk.report import (
            ReportError,
            default_report_path,
            load_report_data,
            parse_day,
            render_report,
            write_report,
        )

        root = data_dir or get_settings().data_dir
        try:
            business_day = parse_day(day)
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=console, transient=True,
            ) as progress:
                loading = progress.add_task("reading scores, alerts, quarantine and the model registry", total=None)
                data = load_report_data(root, business_day)
                progress.remove_task(loading)
                charts = progress.add_task("drawing charts", total=1 + data.customers.height)
                html = render_report(data, on_chart=lambda _name: progress.advance(charts))
                path = write_report(html, out or default_report_path(root, business_day))
        except ReportError as exc:
            _fail(str(exc))
        console.print(
            f"report for {business_day}: {data.alerts.height} alerts, {data.flagged_customers} flagged customers "
            f"-> {path} ({path.stat().st_size / 1024:,.0f} KiB)"
        )
