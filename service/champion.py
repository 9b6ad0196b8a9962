"""The champion model, loaded from the MLflow registry by alias and swapped when the alias moves.

Requests take one (scorer, version) pair at their start and keep it to the end, so a swap never
touches a request in flight; the swap itself is one reference assignment.
"""
from __future__ import annotations

import logging
import threading

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.registry import configure, load_alias

log = logging.getLogger("finrisk.service")


class ChampionSource:
    def __init__(self, model_name: str, alias: str, tracking_uri: str, artifact_root=None):
        self.model_name = model_name
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._current: tuple | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: MlflowClient | None = None
        self.last_error: str | None = None

    def current(self) -> tuple | None:
        """(scorer, version), or None before a champion was found."""
        return self._current

    @property
    def version(self) -> int | None:
        return None if self._current is None else self._current[1]

    def _registered_version(self) -> int | None:
        try:
            return int(self._client.get_model_version_by_alias(self.model_name, self.alias).version)
        except MlflowException:
            return None

    def refresh(self) -> bool:
        """Load the aliased version if it differs from the one serving; True when it swapped."""
        if self._client is None:  # once: configuring costs more than the check, and the check holds the GIL
            configure(self.tracking_uri, self.artifact_root)
            self._client = MlflowClient()
        version = self._registered_version()
        if version is None or version == self.version:
            return False
        loaded = load_alias(self.model_name, self.alias)
        if loaded is None:
            return False
        self._current = loaded
        log.info("serving %s version %d (alias %s)", self.model_name, loaded[1], self.alias)
        return True

    def watch(self, every_seconds: float) -> None:
        """Re-check the alias in a background thread until stop()."""
        def loop():
            while not self._stop.wait(every_seconds):
                try:
                    self.refresh()
                    self.last_error = None
                except Exception as exc:  # keep serving the loaded model when the registry is unreachable
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("champion check failed, still serving version %s: %s", self.version, exc)

        self._thread = threading.Thread(target=loop, name="champion-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
