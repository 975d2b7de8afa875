#!/usr/bin/env bash
# The whole test run, as in CI: static checks, then pytest on SQLite, then pytest on a throw-away
# PostgreSQL 15 (scripts/pg.sh). Stops at the first failure and says which step failed.
#
#   scripts/test.sh [PYTEST ARGS...]      e.g. scripts/test.sh -k api -x
#   PYTEST_ARGS="-k api" scripts/test.sh  (same; split on spaces, no quoting)
#
# Both pytest passes get the extra arguments. Run as root, missing Debian packages are installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}

# shellcheck disable=SC2206 # word splitting of PYTEST_ARGS is the point
EXTRA_ARGS=(${PYTEST_ARGS:-} "$@")

# Settings from the caller's shell must not steer the tests elsewhere (pytest-django would prefer
# an exported DJANGO_SETTINGS_MODULE over pyproject.toml's tests.settings).
unset DJANGO_SETTINGS_MODULE DATABASE_URL CACHE_URL

# --- Step bookkeeping: a header per step, its duration, a summary at the end, and on failure the
# name of the step that failed.
STEP=
STEP_T0=
TIMINGS=()
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
end_step() {
    [[ -n $STEP ]] || return 0
    local secs
    secs=$(elapsed "$STEP_T0")
    echo "<== $STEP: ${secs}s"
    TIMINGS+=("$(printf '%7ss  %s' "$secs" "$STEP")")
    STEP=
}
step() {
    end_step
    STEP=$1
    STEP_T0=$EPOCHREALTIME
    printf '\n==> %s\n' "$STEP"
}

T_START=$EPOCHREALTIME
WORK=$(mktemp -d "${TMPDIR:-/tmp}/impact-test.XXXXXX")
finish() {
    local rc=$?
    local failed=$STEP
    end_step
    rm -rf "$WORK"
    echo
    echo "Timings:"
    ((${#TIMINGS[@]})) && printf '%s\n' "${TIMINGS[@]}"
    printf '%7ss  total\n' "$(elapsed "$T_START")"
    if ((rc == 0)); then
        echo "All checks and tests passed."
    else
        echo "FAILED (exit $rc) in step: ${failed:-setup}" >&2
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a pytest command line (possibly wrapped, as in scripts/pg.sh pytest ...). pytest exits 5
# when nothing was collected: a typo'd -k or a broken testpaths must not pass silently.
run_pytest() {
    local rc=0
    "$@" || rc=$?
    if ((rc == 5)); then
        echo "ERROR: pytest collected no tests" >&2
    fi
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
step "Debian packages (postgresql, chromium)"
missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then missing+=(postgresql); fi
if [[ ! -x $CHROMIUM_PATH ]]; then missing+=(chromium); fi
if ((${#missing[@]})); then
    if ((EUID == 0)); then
        echo "Installing: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    else
        echo "ERROR: missing Debian packages: ${missing[*]}" >&2
        echo "Install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        echo "(PostgreSQL runs the database tests, chromium the browser tests; both are required.)" >&2
        exit 1
    fi
else
    echo "present"
fi

step "Python environment (.venv, pip install -e .[dev])"
make --no-print-directory install-dev
export PATH=$VENV/bin:$PATH
export CHROMIUM_PATH

step "ruff check"
ruff check .

# A scratch SQLite file keeps the checks away from the developer's db.sqlite3.
step "makemigrations --check"
SECRET_KEY=x DEBUG=true DATABASE_URL="sqlite:///$WORK/checks.sqlite3" \
    python manage.py makemigrations --check --dry-run

# Production-like settings, so every deployment warning counts as a failure.
step "check --deploy"
SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(45))') \
    DEBUG=false ALLOWED_HOSTS=impact.example.org DATABASE_URL="sqlite:///$WORK/checks.sqlite3" \
    python manage.py check --deploy --fail-level WARNING

# The postgres-marked tests need real row locking and concurrency; they run in the second pass.
step "pytest pass 1/2: SQLite"
DATABASE_URL="sqlite:///$WORK/test.sqlite3" run_pytest pytest -m "not postgres" "${EXTRA_ARGS[@]}"

step "pytest pass 2/2: PostgreSQL"
run_pytest scripts/pg.sh pytest "${EXTRA_ARGS[@]}"
