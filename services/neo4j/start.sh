#!/usr/bin/env bash
# start.sh HOME_DIR [PASSWORD]
#
# Starts Neo4j in the background (official launcher org.neo4j.server.startup.Neo4jCommand
# "start", which spawns org.neo4j.server.CommunityEntryPoint with the JVM settings of
# HOME_DIR/conf/neo4j.conf and writes HOME_DIR/run/neo4j.pid). Logs: HOME_DIR/logs.
#
# PASSWORD (or env NEO4J_PASSWORD) is the initial password of user "neo4j". It is only
# applied before the very first start (neo4j-admin dbms set-initial-password); once the
# system database exists it is ignored - change it with ALTER USER / ALTER CURRENT USER.
# Minimum length 8.
#
# Waits until Bolt answers a real handshake (and the HTTP port, if enabled), at most
# NEO4J_START_TIMEOUT seconds (default 120). Exit 0 when up (also when it was already
# running), non-zero with the log tail otherwise.
set -euo pipefail
# shellcheck source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: start.sh HOME_DIR [PASSWORD]"
HOME_DIR="$(abs_home "$1" create)"
PASSWORD="${2:-${NEO4J_PASSWORD:-}}"
TIMEOUT="${NEO4J_START_TIMEOUT:-120}"

require_java17
is_installed "$HOME_DIR" && [ -f "$HOME_DIR/conf/neo4j.conf" ] || "$NEO4J_SERVICE_DIR/install.sh" "$HOME_DIR"
neo4j_env "$HOME_DIR"

# serialise concurrent start.sh invocations on the same HOME_DIR
if command -v flock >/dev/null 2>&1; then
    exec 9>"$HOME_DIR/run/.start.lock"
    flock -w $((TIMEOUT + 60)) 9 || die "another start.sh is still running for $HOME_DIR"
fi

wait_ready() { # pid [deadline]
    local pid="$1" deadline="${2:-$((SECONDS + TIMEOUT))}"
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! pid_alive "$pid" "$HOME_DIR"; then
            log "server process $pid exited during startup"
            show_log_tail "$HOME_DIR"
            rm -f "$HOME_DIR/run/neo4j.pid"
            return 1
        fi
        if server_ready "$HOME_DIR"; then return 0; fi
        sleep 1
    done
    log "not ready within ${TIMEOUT}s (pid $pid is still running; stop it with stop.sh)"
    show_log_tail "$HOME_DIR"
    return 1
}

# --- already running? ------------------------------------------------------------
pid="$(read_pid "$HOME_DIR" || true)"
if [ -n "$pid" ]; then
    if pid_alive "$pid" "$HOME_DIR"; then
        if server_ready "$HOME_DIR"; then
            log "already running (pid $pid), bolt://$(bolt_address "$HOME_DIR")"
            exit 0
        fi
        log "pid $pid is running but not ready yet, waiting..."
        wait_ready "$pid" || exit 1
        log "up (pid $pid)"
        exit 0
    fi
    log "removing stale pid file (pid $pid not running)"
    rm -f "$HOME_DIR/run/neo4j.pid"
fi

read -r bhost bport <<<"$(split_hostport "$(bolt_address "$HOME_DIR")")"
if port_open "$bhost" "$bport"; then
    die "port $bhost:$bport is already in use by another process (not this HOME_DIR's server)"
fi

# --- initial password (only before the first start) ---------------------------------
if [ ! -d "$HOME_DIR/data/databases/system" ]; then
    [ -n "$PASSWORD" ] || die "first start: a PASSWORD argument (or NEO4J_PASSWORD) is required"
    [ ${#PASSWORD} -ge 8 ] || die "password must be at least 8 characters"
    log "first start: setting initial password for user neo4j"
    out="$(launcher "$HOME_DIR" org.neo4j.server.startup.Neo4jAdminCommand \
            dbms set-initial-password "$PASSWORD" 2>&1)" || { echo "$out" >&2; die "set-initial-password failed"; }
elif [ -n "$PASSWORD" ]; then
    log "note: database already initialised, PASSWORD argument ignored"
fi

# --- start -------------------------------------------------------------------------
# Neo4j recommends >= 40000 open files; raise the soft limit as far as the hard limit allows.
hard_nofile="$(ulimit -Hn)"
if [ "$hard_nofile" = unlimited ] || [ "$hard_nofile" -ge 40000 ]; then ulimit -Sn 40000 2>/dev/null || true
else ulimit -Sn "$hard_nofile" 2>/dev/null || true; fi

t0=$SECONDS
deadline=$((SECONDS + TIMEOUT))
launch_log="$HOME_DIR/logs/launcher.log"
echo "=== $(date -u +%FT%TZ) start" >>"$launch_log"
# The launcher spawns the server JVM detached, writes run/neo4j.pid and returns once
# the process is running (typically after a few seconds).
launch_rc=0 why=""
timeout --kill-after=5 "$TIMEOUT" \
    java -Xmx256m -XX:+UseSerialGC -cp "$HOME_DIR/lib/*" org.neo4j.server.startup.Neo4jCommand start \
    >>"$launch_log" 2>&1 || launch_rc=$?
pid="$(read_pid "$HOME_DIR" || true)"
if [ "$launch_rc" -eq 124 ] || [ "$launch_rc" -eq 137 ]; then
    # timeout(1) signals its whole process group, so the half-started server got SIGTERM
    # too; make sure it is gone rather than leaving a half-started server behind.
    log "launcher timed out after ${TIMEOUT}s; stopping the half-started server"
    if [ -n "$pid" ] && pid_alive "$pid" "$HOME_DIR"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    launch_rc=1 pid="" why="timed out"
fi
if [ "$launch_rc" -ne 0 ] && ! { [ -n "$pid" ] && pid_alive "$pid" "$HOME_DIR"; }; then
    log "launcher ${why:-failed (rc=$launch_rc)}; output:"
    rm -f "$HOME_DIR/run/neo4j.pid"
    sed -n '/^=== /h; /^=== /!H; ${x;p}' "$launch_log" | tail -n 30 >&2
    show_log_tail "$HOME_DIR"
    exit 1
fi
[ -n "$pid" ] || { tail -n 30 "$launch_log" >&2; die "launcher did not write $HOME_DIR/run/neo4j.pid"; }

wait_ready "$pid" "$deadline" || exit 1
log "up in $((SECONDS - t0))s (pid $pid): bolt://$(bolt_address "$HOME_DIR")$(http_enabled "$HOME_DIR" && echo ", http://$(http_address "$HOME_DIR")/browser/")"
