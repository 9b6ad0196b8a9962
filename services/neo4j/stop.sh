#!/usr/bin/env bash
# stop.sh HOME_DIR
#
# Stops the server started by start.sh: SIGTERM (Neo4j shuts down cleanly and
# checkpoints), waits up to NEO4J_STOP_TIMEOUT seconds (default 120), then SIGKILL.
# Harmless if it is not running. A clean shutdown normally takes ~10 s (Bolt/netty
# quiet periods).
set -euo pipefail
# shellcheck source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -eq 1 ] || die "usage: stop.sh HOME_DIR"
HOME_DIR="$(abs_home "$1")"
TIMEOUT="${NEO4J_STOP_TIMEOUT:-120}"

pid="$(read_pid "$HOME_DIR" || true)"
if [ -z "$pid" ]; then
    log "not running (no pid file)"
    exit 0
fi
if ! pid_alive "$pid" "$HOME_DIR"; then
    log "not running (stale pid $pid), removing pid file"
    rm -f "$HOME_DIR/run/neo4j.pid"
    exit 0
fi

log "stopping pid $pid (SIGTERM)"
kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + TIMEOUT))
while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done

if kill -0 "$pid" 2>/dev/null; then
    log "still running after ${TIMEOUT}s, sending SIGKILL (next start will run recovery)"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$HOME_DIR/run/neo4j.pid"
    kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
    exit 1
fi
rm -f "$HOME_DIR/run/neo4j.pid"
log "stopped"
