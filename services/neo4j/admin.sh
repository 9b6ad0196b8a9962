#!/usr/bin/env bash
# admin.sh HOME_DIR ARGS...
#
# Runs neo4j-admin (org.neo4j.server.startup.Neo4jAdminCommand) against HOME_DIR
# with NEO4J_HOME=HOME_DIR and NEO4J_CONF=HOME_DIR/conf. Examples:
#   admin.sh HOME server validate-config
#   admin.sh HOME dbms set-initial-password 'secret123'
#   admin.sh HOME database import full --overwrite-destination \
#            --nodes=Person=HOME/import/persons_header.csv,HOME/import/persons.csv neo4j
#   admin.sh HOME database dump neo4j --to-path=/some/dir     (server must be stopped)
# Relative file arguments are resolved against the caller's current directory.
# Env: HEAP_SIZE (e.g. 1g) / JAVA_OPTS are honoured by neo4j-admin for the tool's JVM.
set -euo pipefail
# shellcheck source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -ge 1 ] || die "usage: admin.sh HOME_DIR neo4j-admin-args..."
HOME_DIR="$(abs_home "$1")"; shift
is_installed "$HOME_DIR" || die "$HOME_DIR is not installed (run install.sh first)"
require_java17
neo4j_env "$HOME_DIR"
# "database import" writes import.report into the caller's cwd by default; keep it in HOME_DIR/logs
args=("$@")
if [ "${1:-}" = database ] && [ "${2:-}" = import ]; then
    case " $* " in *" --report-file"*) ;; *) args+=("--report-file=$HOME_DIR/logs/import.report") ;; esac
fi
exec java -Xmx256m -XX:+UseSerialGC -cp "$HOME_DIR/lib/*" org.neo4j.server.startup.Neo4jAdminCommand "${args[@]}"
