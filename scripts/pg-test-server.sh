#!/usr/bin/env bash
# A throw-away PostgreSQL server for fixseq's tests: a fresh data directory under $TMPDIR, listening
# on 127.0.0.1 only (never any other address), on a free port, owned by the `postgres` user when run
# as root (initdb and postgres refuse to run as root), by the caller otherwise.
#
# The one command a developer needs (starts the server, runs the command with FIXSEQ_PG_DSN set,
# stops the server and deletes its data directory however the command ends):
#
#     bash scripts/pg-test-server.sh run bash scripts/check.sh
#     bash scripts/pg-test-server.sh run .venv/bin/python -m pytest tests/test_postgres.py
#
# Other forms:
#     eval "$(bash scripts/pg-test-server.sh start)"   # leave it running; prints the exports
#     bash scripts/pg-test-server.sh restart           # crash (-m immediate) and start again
#     bash scripts/pg-test-server.sh stop              # stop and delete it
# `restart` and `stop` find the server through FIXSEQ_PG_DATA, which `start` and `run` export.
#
# Needs the PostgreSQL server binaries (Debian: apt-get install postgresql). PG_BINDIR overrides where
# they are looked for.
set -euo pipefail

die() { echo "pg-test-server: $*" >&2; exit 1; }

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
    # Debian/Ubuntu keep the server binaries out of PATH, one directory per major version.
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then echo "$newest"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
    die "no PostgreSQL server binaries (initdb) found: install them (Debian: apt-get install postgresql) or set PG_BINDIR"
}

# Run a command as the server's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# The server's options; the port is kept in the data directory so `restart` starts it the same way.
server_opts() {
    echo "-c listen_addresses=127.0.0.1 -c port=$(cat "$1/port") -c unix_socket_directories='$1/db'"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

do_start() {
    local bindir data port password owner
    bindir=$(find_bindir)
    data=$(mktemp -d "${TMPDIR:-/tmp}/fixseq-pg.XXXXXX")
    chmod 700 "$data"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' user to own the server (install the postgresql package)"
        chown postgres: "$data"
        owner=postgres
    else
        owner=$(id -un)
    fi
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    local pwfile="$data/.pwfile"
    printf '%s\n' "$password" | as_owner tee "$pwfile" >/dev/null
    as_owner chmod 600 "$pwfile"
    # Password (SCRAM) over TCP, peer over the private socket directory; no trust anywhere.
    as_owner "$bindir/initdb" -D "$data/db" -U "$owner" --pwfile="$pwfile" --auth-host=scram-sha-256 \
        --auth-local=peer -E UTF8 --locale=C.UTF-8 >"$data/initdb.log" 2>&1 \
        || { cat "$data/initdb.log" >&2; die "initdb failed"; }
    as_owner rm -f "$pwfile"
    local tries=0
    while :; do
        port=$(free_port)
        echo "$port" >"$data/port"
        if as_owner "$bindir/pg_ctl" -D "$data/db" -l "$data/db/server.log" -w -t 60 \
            -o "$(server_opts "$data")" start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        # Another process may have taken the port between free_port and the bind: try another.
        [ "$tries" -lt 5 ] || { cat "$data/db/server.log" >&2; die "the server did not start"; }
    done
    as_owner "$bindir/createdb" -h "$data/db" -p "$port" -U "$owner" fixseq_test
    echo "export FIXSEQ_PG_DSN='host=127.0.0.1 port=$port dbname=fixseq_test user=$owner password=$password'"
    echo "export FIXSEQ_PG_DATA='$data'"
    echo "export FIXSEQ_PG_BINDIR='$bindir'"
}

check_data() {
    [ -n "${FIXSEQ_PG_DATA:-}" ] && [ -d "$FIXSEQ_PG_DATA/db" ] \
        || die "FIXSEQ_PG_DATA does not name a server made by this script"
}

do_stop() {
    check_data
    local bindir="${FIXSEQ_PG_BINDIR:-$(find_bindir)}"
    as_owner "$bindir/pg_ctl" -D "$FIXSEQ_PG_DATA/db" -w -t 60 -m fast stop >/dev/null 2>&1 || true
    rm -rf "$FIXSEQ_PG_DATA"
}

do_restart() {
    check_data
    local bindir="${FIXSEQ_PG_BINDIR:-$(find_bindir)}"
    # -m immediate is a crash: no shutdown checkpoint, so the start replays the WAL, which is what
    # the durability tests want to go through.
    as_owner "$bindir/pg_ctl" -D "$FIXSEQ_PG_DATA/db" -w -t 60 -m immediate stop >/dev/null
    as_owner "$bindir/pg_ctl" -D "$FIXSEQ_PG_DATA/db" -l "$FIXSEQ_PG_DATA/db/server.log" -w -t 60 \
        -o "$(server_opts "$FIXSEQ_PG_DATA")" start >/dev/null
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    start)
        do_start
        ;;
    stop)
        do_stop
        ;;
    restart)
        do_restart
        ;;
    run)
        [ $# -gt 0 ] || die "usage: $0 run COMMAND [ARGS...]"
        exports=$(do_start)
        eval "$exports"
        trap do_stop EXIT
        trap 'exit 130' INT TERM
        echo "pg-test-server: PostgreSQL on ${FIXSEQ_PG_DSN%% dbname=*} (data in $FIXSEQ_PG_DATA)" >&2
        "$@"
        ;;
    *)
        die "usage: $0 run COMMAND [ARGS...] | start | restart | stop"
        ;;
esac
