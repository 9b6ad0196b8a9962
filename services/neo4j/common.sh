# shellcheck shell=bash
# Shared helpers for install.sh / start.sh / stop.sh / admin.sh. Source it; don't run it.

NEO4J_SERVICE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# single source of truth for versions: pom.xml
NEO4J_VERSION="$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$NEO4J_SERVICE_DIR/pom.xml")"
NEO4J_BROWSER_VERSION="$(sed -n 's:.*<neo4j-browser.version>\(.*\)</neo4j-browser.version>.*:\1:p' "$NEO4J_SERVICE_DIR/pom.xml")"
export NEO4J_SERVICE_DIR NEO4J_VERSION NEO4J_BROWSER_VERSION
# The suffix names the jar set: bump it when pom.xml gains dependencies, so an existing lib/ is
# resolved again (r2: the Parquet reader's dependencies for neo4j-admin import).
INSTALL_MARKER_NAME=".installed-neo4j-${NEO4J_VERSION}-r2"

die() { echo "neo4j: $*" >&2; exit 1; }
log() { echo "neo4j: $*" >&2; }

# abs_home DIR [create] -> prints the absolute path of DIR
abs_home() {
    local dir="$1"
    [ -n "$dir" ] || die "HOME_DIR argument is required"
    if [ "${2:-}" = create ]; then mkdir -p "$dir" || die "cannot create $dir"; fi
    [ -d "$dir" ] || die "HOME_DIR $dir does not exist (run install.sh first)"
    (cd "$dir" && pwd -P)
}

require_java17() {
    command -v java >/dev/null 2>&1 || die "java not found on PATH (Java 17 or 21 is required)"
    local v
    v="$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
    case "$v" in
        17|21) ;;
        *) die "Neo4j ${NEO4J_VERSION} needs Java 17 or 21, found java.specification.version=${v:-unknown}" ;;
    esac
}

is_installed() { [ -f "$1/lib/$INSTALL_MARKER_NAME" ] && [ -f "$1/lib/neo4j-${NEO4J_VERSION}.jar" ]; }

# Environment for the official launchers (Neo4jCommand / Neo4jAdminCommand).
neo4j_env() {
    export NEO4J_HOME="$1"
    export NEO4J_CONF="$1/conf"
    unset NEO4J_DEBUG
}

# Run a launcher main class. The launcher itself is a small JVM that spawns the
# real server/admin JVM with the settings from neo4j.conf (heap, server.jvm.additional).
launcher() {
    local home="$1" cls="$2"; shift 2
    java -Xmx256m -XX:+UseSerialGC -cp "$home/lib/*" "$cls" "$@"
}

# pid_alive PID HOME: PID exists and is a JVM running from HOME/lib (guards against PID reuse)
pid_alive() {
    local pid="$1" home="$2"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$home/lib/" || return 1
    fi
    return 0
}

read_pid() { [ -f "$1/run/neo4j.pid" ] && tr -dc '0-9' <"$1/run/neo4j.pid"; }

# conf_value HOME KEY DEFAULT -> last value of KEY in neo4j.conf
conf_value() {
    local v
    v="$(grep -E "^[[:space:]]*$2=" "$1/conf/neo4j.conf" 2>/dev/null | tail -n1 | cut -d= -f2- | tr -d '[:space:]')"
    echo "${v:-$3}"
}

bolt_address() { conf_value "$1" server.bolt.listen_address 127.0.0.1:7687; }
http_enabled() { [ "$(conf_value "$1" server.http.enabled true)" = true ]; }
http_address() { conf_value "$1" server.http.listen_address 127.0.0.1:7474; }

split_hostport() { # "host:port" -> "host port" (empty host -> 127.0.0.1)
    local host="${1%:*}" port="${1##*:}"
    [ -n "$host" ] && [ "$host" != "0.0.0.0" ] || host=127.0.0.1
    echo "$host $port"
}

port_open() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# bolt_answers "host:port": performs a real Bolt handshake (magic 0x6060B017 +
# proposed versions 5.0-5.8 / 4.4) and succeeds if the server agrees on a version.
bolt_answers() {
    local host port reply
    read -r host port <<<"$(split_hostport "$1")"
    reply="$(
        timeout 5 bash -c '
            exec 3<>"/dev/tcp/$0/$1" || exit 1
            printf "\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00" >&3
            head -c 4 <&3 | od -An -tx1 | tr -d " \n"
        ' "$host" "$port" 2>/dev/null
    )" || return 1
    [ ${#reply} -eq 8 ] && [ "$reply" != "00000000" ]
}

# http_answers "host:port": HTTP discovery endpoint returns a status line
http_answers() {
    local host port line
    read -r host port <<<"$(split_hostport "$1")"
    line="$(
        timeout 5 bash -c '
            exec 3<>"/dev/tcp/$0/$1" || exit 1
            printf "GET / HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
            head -n 1 <&3
        ' "$host" "$port" 2>/dev/null
    )" || return 1
    case "$line" in HTTP/1.?\ 200*) return 0 ;; *) return 1 ;; esac
}

server_ready() { # HOME
    bolt_answers "$(bolt_address "$1")" || return 1
    if http_enabled "$1"; then http_answers "$(http_address "$1")" || return 1; fi
    return 0
}

show_log_tail() { # HOME [lines]
    local f n="${2:-25}"
    for f in "$1/logs/neo4j.log" "$1/logs/debug.log"; do
        [ -f "$f" ] || continue
        echo "----- tail -n $n $f -----" >&2
        tail -n "$n" "$f" >&2
    done
}
