#!/usr/bin/env bash
# Benchmark: how long `manage.py seed_demo` takes. Not a test; `make bench-seed`.
#   1. the default fleet (what `make run` seeds) on a fresh SQLite file;
#   2. INSTANCES x DAYS (default 1,000 x 365) on a throw-away PostgreSQL (scripts/pg.sh: durability
#      off, as for any bulk load into a scratch database).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=$PWD/.venv/bin/python
INSTANCES=${INSTANCES:-1000}
DAYS=${DAYS:-365}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/impact-bench-seed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export SECRET_KEY=bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz DEBUG=false SECURE_SSL_REDIRECT=false
unset CACHE_URL

echo "== default fleet on SQLite"
DATABASE_URL="sqlite:///$WORK/seed.sqlite3" "$PY" manage.py migrate --noinput -v0
time DATABASE_URL="sqlite:///$WORK/seed.sqlite3" "$PY" manage.py seed_demo

echo
echo "== $INSTANCES instances x $DAYS days on PostgreSQL"
# shellcheck disable=SC2016 # expanded by the inner shell, where pg.sh has set DATABASE_URL
scripts/pg.sh bash -c '
    "$0" manage.py migrate --noinput -v0
    time "$0" manage.py seed_demo --instances "$1" --days "$2"
    psql -Atc "SELECT '\''submissions '\'' || count(*) FROM reports_submission UNION ALL
               SELECT '\''workflows '\'' || count(*) FROM reports_workflow UNION ALL
               SELECT '\''database '\'' || pg_size_pretty(pg_database_size(current_database()))"
' "$PY" "$INSTANCES" "$DAYS"
