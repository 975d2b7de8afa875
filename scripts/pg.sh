#!/usr/bin/env bash
# Run one command against a throw-away PostgreSQL cluster, then stop and delete the cluster.
#
#   scripts/pg.sh COMMAND [ARGS...]
#
# The command sees DATABASE_URL=postgres://postgres@127.0.0.1:PORT/impact and PGHOST/PGPORT/PGUSER,
# so `scripts/pg.sh psql -c 'select 1'` works too. The command's exit status is passed on.
# PG_BIN overrides where initdb/pg_ctl live (default: Debian's PostgreSQL 15, else the newest one).
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

if [[ -z ${PG_BIN:-} ]]; then
    PG_BIN=/usr/lib/postgresql/15/bin
    if [[ ! -x $PG_BIN/initdb ]]; then
        # Another Debian release ships another major version; any recent one will do.
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
fi
if [[ ! -x ${PG_BIN:-}/initdb ]]; then
    echo "pg.sh: PostgreSQL server binaries not found (install the Debian package 'postgresql')" >&2
    exit 1
fi

PGROOT=$(mktemp -d "${TMPDIR:-/tmp}/impact-pg.XXXXXX")
DATA=$PGROOT/data
STARTED=

# PostgreSQL refuses to run as root: as root, hand the directory to the postgres user and run the
# server tools as that user. The subshell's cd keeps them out of a directory they cannot read.
if ((EUID == 0)); then
    chown postgres: "$PGROOT"
    as_pg() { (cd "$PGROOT" && runuser -u postgres -- "$@"); }
else
    as_pg() { (cd "$PGROOT" && "$@"); }
fi

cleanup() {
    local rc=$?
    if [[ -n $STARTED ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 ||
            echo "pg.sh: warning: could not stop the cluster in $PGROOT" >&2
    fi
    rm -rf "$PGROOT"
    exit "$rc"
}
trap cleanup EXIT
# Make Ctrl-C and a CI timeout's SIGTERM go through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM

# Prefer 54329; when it is taken (say by a parallel run), let the kernel pick a free port.
PORT=$(python3 - <<'EOF'
import socket

def bind(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]

try:
    print(bind(54329))
except OSError:
    print(bind(0))
EOF
)

t0=$EPOCHREALTIME
init() { as_pg "$PG_BIN/initdb" -D "$DATA" -A trust -U postgres --encoding=UTF8 "$@" >"$PGROOT/initdb.log" 2>&1; }
# C.UTF-8 sorts like production's UTF-8 databases; plain C is the fallback where it is missing.
if ! init --locale=C.UTF-8; then
    rm -rf "$DATA"
    if ! init --locale=C; then
        cat "$PGROOT/initdb.log" >&2
        echo "pg.sh: initdb failed" >&2
        exit 1
    fi
fi

# Durability is pointless for a cluster deleted afterwards; turning it off makes tests faster.
# max_connections is generous because concurrency tests open many connections at once.
STARTED=1
if ! as_pg "$PG_BIN/pg_ctl" -w -D "$DATA" -l "$PGROOT/log" \
    -o "-k $PGROOT -p $PORT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null; then
    cat "$PGROOT/log" >&2 || true
    echo "pg.sh: the PostgreSQL server did not start" >&2
    exit 1
fi

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=impact
export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/impact"
"$PG_BIN/createdb" impact
printf 'pg.sh: PostgreSQL %s on 127.0.0.1:%s ready in %.1fs\n' \
    "$("$PG_BIN/postgres" -V | awk '{print $3}')" "$PORT" \
    "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')"

# Not exec: the EXIT trap has to outlive the command to stop the cluster.
"$@"
