#!/usr/bin/env bash
# install.sh HOME_DIR
#
# Idempotent install of Neo4j Community 5.26.30 into HOME_DIR, using only
# Maven Central (needs java 17/21 + mvn on PATH):
#   - HOME_DIR/lib      all runtime jars (mvn dependency:copy-dependencies on ./pom.xml);
#                       skipped entirely when HOME_DIR/lib already holds a complete install
#   - HOME_DIR/{conf,data,logs,plugins,run,import,certificates,licenses}
#   - HOME_DIR/conf/neo4j.conf rendered from neo4j.conf.template, plus
#     server-logs.xml / user-logs.xml (only if missing; never overwritten)
#
# Env: MAVEN_REPO_LOCAL=/path  -> passed as -Dmaven.repo.local (default: ~/.m2/repository)
#      MAVEN_ARGS="..."        -> extra mvn arguments (e.g. -s settings.xml)
set -euo pipefail
# shellcheck source=common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

[ $# -eq 1 ] || die "usage: install.sh HOME_DIR"
HOME_DIR="$(abs_home "$1" create)"
require_java17

if is_installed "$HOME_DIR"; then
    log "jars already present in $HOME_DIR/lib ($(cat "$HOME_DIR/lib/$INSTALL_MARKER_NAME")), skipping mvn"
else
    command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH"
    staging="$HOME_DIR/lib.partial.$$"
    rm -rf "$staging"
    trap 'rm -rf "$staging"' EXIT
    mvn_args=(-B -q -f "$NEO4J_SERVICE_DIR/pom.xml"
              dependency:copy-dependencies
              -DincludeScope=runtime
              -DoutputDirectory="$staging")
    [ -n "${MAVEN_REPO_LOCAL:-}" ] && mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO_LOCAL")
    # shellcheck disable=SC2206
    [ -n "${MAVEN_ARGS:-}" ] && mvn_args+=($MAVEN_ARGS)
    log "resolving Neo4j $NEO4J_VERSION + neo4j-browser $NEO4J_BROWSER_VERSION from Maven Central..."
    mvn_log="$HOME_DIR/logs/install-mvn.log"
    mkdir -p "$HOME_DIR/logs"
    if ! mvn "${mvn_args[@]}" >"$mvn_log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" >&2
        die "mvn dependency:copy-dependencies failed (log: $mvn_log)"
    fi
    [ -f "$staging/neo4j-${NEO4J_VERSION}.jar" ] || die "mvn finished but neo4j-${NEO4J_VERSION}.jar is missing"
    n_jars="$(find "$staging" -maxdepth 1 -name '*.jar' | wc -l)"
    echo "neo4j ${NEO4J_VERSION}, browser ${NEO4J_BROWSER_VERSION}, ${n_jars} jars, $(date -u +%FT%TZ)" \
        >"$staging/$INSTALL_MARKER_NAME"
    # swap in atomically-ish; an old/partial lib dir is replaced
    rm -rf "${HOME_DIR:?}/lib"
    mv "$staging" "$HOME_DIR/lib"
    trap - EXIT
    log "installed ${n_jars} jars into $HOME_DIR/lib"
fi

mkdir -p "$HOME_DIR"/{conf,data,logs,plugins,run,import,certificates,licenses}

if [ ! -f "$HOME_DIR/conf/neo4j.conf" ]; then
    case "$HOME_DIR" in *'|'*|*'&'*|*\\*) die "HOME_DIR must not contain | & or \\" ;; esac
    sed "s|@NEO4J_HOME@|$HOME_DIR|g" "$NEO4J_SERVICE_DIR/neo4j.conf.template" >"$HOME_DIR/conf/neo4j.conf"
    log "wrote $HOME_DIR/conf/neo4j.conf"
fi
for f in server-logs.xml user-logs.xml; do
    [ -f "$HOME_DIR/conf/$f" ] || cp "$NEO4J_SERVICE_DIR/$f" "$HOME_DIR/conf/$f"
done
