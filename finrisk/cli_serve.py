"""finrisk serve / score-recent: near-real-time scoring."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from finrisk.cli_common import console, DataDir, fail as _fail
from finrisk.config import ConfigError, get_settings


def _check_serving(root: Path) -> None:
    """What the service needs before it can score, checked here so the user gets one line."""
    from features.twin import TwinNotFoundError, read_twin
    from models.registry import configure, load_alias
    from service.scoring import check_thresholds

    settings = get_settings()
    try:
        settings.require_api_keys()
        check_thresholds(settings.review_threshold, settings.block_threshold)
        with console.status("loading the twin and the champion model..."):
            twin = read_twin(root)
            configure(settings.tracking_uri, settings.artifact_root)
            champion = load_alias(settings.mlflow_model_name, settings.champion_alias)
    except (ConfigError, TwinNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if champion is None:
        _fail(f"no {settings.champion_alias!r} for model {settings.mlflow_model_name!r}; train a model first (finrisk train)")
    console.print(f"serving transactions of {twin.as_of} with {settings.mlflow_model_name} version {champion[1]}")


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        data_dir: DataDir = None,
        host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default: FINRISK_SERVE_HOST).")] = None,
        port: Annotated[Optional[int], typer.Option(help="Port (default: FINRISK_SERVE_PORT).")] = None,
    ) -> None:
        """Run the scoring API (POST /v1/score, /v1/score/batch; docs at /docs); needs FINRISK_API_KEYS."""
        import uvicorn

        from service.app import create_app

        settings = get_settings()
        root = Path(data_dir or settings.data_dir)
        _check_serving(root)
        host, port = host or settings.serve_host, port or settings.serve_port
        console.print(f"listening on http://{host}:{port} (API docs at /docs)")
        # One worker: the velocity state lives in this process's memory.
        uvicorn.run(create_app(settings, root), host=host, port=port, workers=1, log_level="info",
                    access_log=settings.serve_access_log)

    @app.command("score-recent")
    def score_recent(
        data_dir: DataDir = None,
        model_name: Annotated[Optional[str], typer.Option(help="Registered model (default: FINRISK_MLFLOW_MODEL_NAME).")] = None,
    ) -> None:
        """Score the transactions that arrived since the last run (safe to run every minute)."""
        from finrisk.services import use_prefect_server_if_running

        use_prefect_server_if_running(get_settings())  # before Prefect is imported
        from flows.score_recent import score_recent_flow

        root = Path(data_dir or get_settings().data_dir)
        if not (root / "processed" / "transactions").exists():
            _fail(f"no processed transactions under {root / 'processed' / 'transactions'}; run `finrisk ingest` first")
        try:
            with console.status("scoring new transactions..."):
                result = score_recent_flow(root, model_name)
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        if result["skipped"]:
            console.print(f"skipped: {result['reason']}")
            return
        days = ", ".join(f"{d}: {n:,}" for d, n in result["by_day"].items()) or "nothing new"
        console.print(f"scored {result['scored']:,} transactions ({days}) with model version "
                      f"{result['model_version']}; {result['alerts']:,} alerts -> {root / 'recent'}")
        if result["waiting_days"]:
            console.print(f"[yellow]{len(result['waiting_days'])} day(s) wait for a twin:[/] latest {result['waiting_days'][-1]}")


if __name__ == "__main__":  # `python -m finrisk.cli_serve serve ...` before the main CLI wires it in
    cli = typer.Typer(add_completion=False)
    register(cli)
    cli()
