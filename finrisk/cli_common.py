"""What every finrisk command shares: the console, the --data-dir option, one-line errors."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console

from finrisk.config import get_settings

console = Console()
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Dataset folder (default: data/).")]


def fail(message: str) -> NoReturn:
    """A user error: one red line, exit code 1, no stack trace."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=1)


def data_dir_or_default(data_dir: Path | None) -> Path:
    return Path(data_dir) if data_dir else get_settings().data_dir
