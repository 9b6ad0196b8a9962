"""The local services finrisk starts itself: Neo4j Community, the MLflow UI and the Prefect UI."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from finrisk.config import PROJECT_ROOT, Settings, prefect_home

NEO4J_SCRIPTS = PROJECT_ROOT / "services" / "neo4j"
RUN_DIR = PROJECT_ROOT / ".services"


class ServiceError(RuntimeError):
    """A service could not be installed, started or reached; the message says why."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400
    except OSError:
        return False


@dataclass
class ServiceStatus:
    name: str
    up: bool
    url: str
    detail: str = ""


# --- Neo4j -------------------------------------------------------------------------------------

def _neo4j_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["NEO4J_HEAP"] = settings.neo4j_heap
    env["NEO4J_PAGECACHE"] = settings.neo4j_pagecache
    return env


def _run_script(script: str, *args: str, settings: Settings) -> None:
    proc = subprocess.run(
        ["bash", str(NEO4J_SCRIPTS / script), *args], env=_neo4j_env(settings),
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise ServiceError(f"neo4j {script} failed:\n{(proc.stderr or proc.stdout)[-3000:]}")


def neo4j_install(settings: Settings) -> None:
    _run_script("install.sh", str(settings.neo4j_home), settings=settings)


def _configure_ports(settings: Settings) -> None:
    """Point the installed server's conf at the configured ports (tests run a second instance)."""
    conf = settings.neo4j_home / "conf" / "neo4j.conf"
    wanted = {
        "server.bolt.listen_address": f"127.0.0.1:{settings.neo4j_bolt_port}",
        "server.bolt.advertised_address": f"127.0.0.1:{settings.neo4j_bolt_port}",
        "server.http.listen_address": f"127.0.0.1:{settings.neo4j_http_port}",
        "server.http.advertised_address": f"127.0.0.1:{settings.neo4j_http_port}",
        "server.memory.heap.initial_size": settings.neo4j_heap,
        "server.memory.heap.max_size": settings.neo4j_heap,
        "server.memory.pagecache.size": settings.neo4j_pagecache,
    }
    lines = [line for line in conf.read_text().splitlines() if line.split("=", 1)[0] not in wanted]
    conf.write_text("\n".join(lines + [f"{k}={v}" for k, v in wanted.items()]) + "\n")


def neo4j_up(settings: Settings) -> None:
    if not (settings.neo4j_home / "conf" / "neo4j.conf").exists():
        neo4j_install(settings)
    _configure_ports(settings)
    _run_script("start.sh", str(settings.neo4j_home), settings.require_neo4j_password(), settings=settings)


def neo4j_down(settings: Settings) -> None:
    if settings.neo4j_home.exists():
        _run_script("stop.sh", str(settings.neo4j_home), settings=settings)


def neo4j_status(settings: Settings) -> ServiceStatus:
    up = port_open("127.0.0.1", settings.neo4j_bolt_port)
    return ServiceStatus("neo4j", up, neo4j_browser_url(settings), settings.neo4j_uri)


def neo4j_browser_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.neo4j_http_port}/browser/"


# --- MLflow and Prefect UIs (plain background processes with pid files) ---------------------------

def _pidfile(name: str) -> Path:
    return RUN_DIR / name / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _start_background(name: str, argv: list[str], env: dict[str, str], ready_url: str, timeout: float = 90) -> None:
    pidfile = _pidfile(name)
    if http_ok(ready_url):
        return  # already up: a second `up` is harmless
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log = open(pidfile.parent / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(ready_url):
            return
        if proc.poll() is not None:
            break
        time.sleep(1)
    tail = (pidfile.parent / f"{name}.log").read_text(errors="replace")[-2000:]
    raise ServiceError(f"{name} did not come up at {ready_url}; log tail:\n{tail}")


def _stop_background(name: str) -> None:
    pidfile = _pidfile(name)
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip() or 0)
    if pid and _alive(pid):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(30):
            if not _alive(pid):
                break
            time.sleep(0.5)
        else:
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def mlflow_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.mlflow_port}"


def prefect_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.prefect_port}"


def mlflow_up(settings: Settings) -> None:
    settings.mlruns_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        _bin("mlflow"), "server", "--host", "127.0.0.1", "--port", str(settings.mlflow_port),
        "--backend-store-uri", settings.tracking_uri,
        "--default-artifact-root", settings.artifact_root.as_uri(), "--workers", "1",
    ]
    _start_background("mlflow", argv, dict(os.environ), f"{mlflow_url(settings)}/health")


def prefect_up(settings: Settings) -> None:
    env = dict(os.environ, PREFECT_HOME=os.environ.get("PREFECT_HOME", str(prefect_home())))
    env.pop("PREFECT_API_URL", None)
    argv = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(settings.prefect_port)]
    _start_background("prefect", argv, env, f"{prefect_url(settings)}/api/health", timeout=120)


def status(settings: Settings) -> list[ServiceStatus]:
    return [
        neo4j_status(settings),
        ServiceStatus("mlflow", http_ok(f"{mlflow_url(settings)}/health"), mlflow_url(settings), settings.tracking_uri),
        ServiceStatus("prefect", http_ok(f"{prefect_url(settings)}/api/health"), prefect_url(settings)),
    ]


def up(settings: Settings, only: tuple[str, ...] = ("neo4j", "mlflow", "prefect")) -> None:
    if "neo4j" in only:
        neo4j_up(settings)
    if "mlflow" in only:
        mlflow_up(settings)
    if "prefect" in only:
        prefect_up(settings)


def down(settings: Settings) -> None:
    _stop_background("prefect")
    _stop_background("mlflow")
    neo4j_down(settings)


def use_prefect_server_if_running(settings: Settings) -> bool:
    """Send flow runs to the local Prefect UI server when it is up; else Prefect runs ephemerally."""
    if "PREFECT_API_URL" in os.environ:
        return True
    if http_ok(f"{prefect_url(settings)}/api/health", timeout=0.5):
        os.environ["PREFECT_API_URL"] = f"{prefect_url(settings)}/api"
        return True
    return False
