# shellcheck shell=bash
#
# scripts/lib/services.sh: find or provide the PostgreSQL and Redis servers that the
# test suite and CI need. Sourced by scripts/test and .ci/run; defines functions only.
#
#   ensure_postgres   sets SERVICES_PG_URL (an admin URL: superuser, database
#                     "postgres") and SERVICES_PG_DESC (one human-readable phrase);
#                     returns 1 with a message if no PostgreSQL can be found or started.
#   ensure_redis      sets SERVICES_REDIS_URL and SERVICES_REDIS_DESC; returns 1 if
#                     no Redis can be found or started (callers decide if that is fatal).
#   ensure_s3         sets SERVICES_S3_URL (an S3-compatible server that accepts any
#                     credentials: moto) and SERVICES_S3_DESC; returns 1 with a message
#                     if none can be found, installed or started.
#   ensure_chromium   sets SERVICES_CHROMIUM and SERVICES_CHROMEDRIVER (a headless browser
#                     and its WebDriver; installs Debian's chromium and chromium-driver
#                     if missing); returns 1 with a message if impossible.
#   ensure_schemathesis
#                     sets SCHEMATHESIS (the path of the schemathesis CLI, an API fuzzer
#                     from PyPI, installed into a venv under
#                     ${XDG_CACHE_HOME:-~/.cache}/orgwall/schemathesis-venv when needed);
#                     returns 1 with a message if it cannot be installed.
#   pg_url_with_db URL NAME
#                     prints URL with its database name replaced by NAME.
#   services_at_exit COMMAND
#                     runs COMMAND when the shell exits (last registered runs first).
#
# Call ensure_postgres/ensure_redis directly, not inside $(...): a throwaway cluster
# lives as long as the shell that started it.
#
# PostgreSQL, first that works:
#   0. ORGWALL_TEST_DATABASE_URL, if set and reachable (a caller such as .ci/run
#      already chose one: reuse it rather than starting a second server);
#   a. DATABASE_URL, if set and reachable;
#   b. a server on 127.0.0.1:5432 that lets user postgres in;
#   c. a Debian cluster (/etc/postgresql/VERSION/NAME), started with pg_ctlcluster and
#      left running, if it lets user postgres in over TCP without a password;
#   d. a throwaway cluster (initdb, trust auth, free port, temp dir) stopped and
#      deleted when the shell exits;
#   e. apt-get install postgresql, then c and d again.
# Redis, first that works:
#   0. ORGWALL_TEST_REDIS_URL;  a. REDIS_URL;  b. 127.0.0.1:6379;
#   c. redis-server started on 127.0.0.1:6379 (left running);
#   d. apt-get install redis-server, then b and c again.
# S3 (moto), first that works:
#   0. ORGWALL_TEST_S3_URL, if set and listening;
#   a. moto's server from python3 on the PATH, if it can import it, started on
#      127.0.0.1 on a free port and stopped when the shell exits;
#   b. the same from a venv under ${XDG_CACHE_HOME:-~/.cache}/orgwall/moto-venv;
#   c. pip install 'moto[server]' into that venv (apt-get install python3-venv first if
#      python3 cannot make one), then b.
#
# Only coreutils, bash, psql/pg_isready, redis-cli, python3 and apt-get are used (plus
# the PostgreSQL server programs pg_ctlcluster, initdb and pg_ctl when starting one,
# and pip from PyPI when moto must be installed).

PG_DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"
REDIS_DEFAULT_URL="redis://127.0.0.1:6379"

# Seconds to wait for a server we started to accept connections.
SERVICES_WAIT_SECS="${SERVICES_WAIT_SECS:-60}"

# ---------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------

# Messages go to stderr so that stdout stays usable for values.
svc_log() { echo "[services] $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# Exit-time cleanup: one EXIT trap running every registered command, newest first.
# INT and TERM are turned into exits so the cleanup also runs on Ctrl-C / kill.
_SERVICES_CLEANUP=()
_services_run_cleanup() {
    local i
    for ((i = ${#_SERVICES_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${_SERVICES_CLEANUP[i]}" || true
    done
    _SERVICES_CLEANUP=()
}
services_at_exit() {
    _SERVICES_CLEANUP+=("$1")
    trap _services_run_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# True if something accepts TCP connections on HOST PORT (bash's /dev/tcp).
port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# apt-get install PACKAGE... non-interactively (root only; runs apt-get update once).
_SERVICES_APT_UPDATED=0
apt_install() {
    if ! is_root || ! have apt-get; then
        svc_log "cannot install $* (needs root and apt-get)"
        return 1
    fi
    if [[ "$_SERVICES_APT_UPDATED" == 0 ]]; then
        svc_log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        _SERVICES_APT_UPDATED=1
    fi
    svc_log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------------------
# PostgreSQL helpers
# ---------------------------------------------------------------------------

# Make sure psql exists (installs the Debian client package if it must and can).
pg_need_client() {
    have psql && return 0
    svc_log "psql not found; installing postgresql-client"
    apt_install postgresql-client && have psql
}

# True if URL accepts a query (connection, authentication and all).
pg_url_ok() {
    pg_need_client || return 1
    PGCONNECT_TIMEOUT=5 psql "$1" -X -A -t -q -c 'select 1' >/dev/null 2>&1
}

# Wait until a server on HOST PORT accepts connections (not necessarily our login).
pg_wait_ready() {
    local host="$1" port="$2" i
    for ((i = 0; i < SERVICES_WAIT_SECS; i++)); do
        if have pg_isready; then
            pg_isready -q -h "$host" -p "$port" -t 2 && return 0
        elif port_open "$host" "$port"; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# Print URL with its database name (the path) replaced by NAME, keeping any
# user, password, host, port and ?query.  postgres://u@h:5432/a?x=1 -> .../NAME?x=1
pg_url_with_db() {
    local url="$1" name="$2" query="" scheme rest authority
    if [[ "$url" == *\?* ]]; then
        query="?${url#*\?}"
        url="${url%%\?*}"
    fi
    if [[ "$url" != *://* ]]; then
        svc_log "not a postgres:// URL: $url"
        return 1
    fi
    scheme="${url%%://*}"
    rest="${url#*://}"
    authority="${rest%%/*}"
    printf '%s://%s/%s%s\n' "$scheme" "$authority" "$name" "$query"
}

# Print the port a Debian cluster is configured for (VERSION NAME), default 5432.
pg_cluster_port() {
    local conf="/etc/postgresql/$1/$2/postgresql.conf" line port=5432
    if [[ -r "$conf" ]]; then
        while IFS= read -r line; do
            if [[ "$line" =~ ^[[:space:]]*port[[:space:]]*=?[[:space:]]*([0-9]+) ]]; then
                port="${BASH_REMATCH[1]}"
            fi
        done <"$conf"
    fi
    echo "$port"
}

# Run a command as the OS user that owns throwaway clusters: postgres when we are
# root (initdb refuses to run as root), else ourselves.
pg_as_owner() {
    if ! is_root; then
        "$@"
    elif have runuser; then
        runuser -u postgres -- "$@"
    else
        su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    fi
}

# Sets SERVICES_PG_URL/SERVICES_PG_DESC.
_pg_use() {
    SERVICES_PG_URL="$1"
    SERVICES_PG_DESC="$2"
}

# ---------------------------------------------------------------------------
# PostgreSQL strategies (each returns 0 after calling _pg_use, else 1)
# ---------------------------------------------------------------------------

# 0 and a: a URL from the environment.
pg_try_env() {
    local var url
    for var in ORGWALL_TEST_DATABASE_URL DATABASE_URL; do
        url="${!var:-}"
        [[ -n "$url" ]] || continue
        if pg_url_ok "$url"; then
            _pg_use "$url" "\$$var"
            return 0
        fi
        svc_log "\$$var is set but not reachable; looking further"
    done
    return 1
}

# b: a server already listening on 127.0.0.1:5432.
pg_try_local() {
    port_open 127.0.0.1 5432 || return 1
    if pg_url_ok "$PG_DEFAULT_URL"; then
        _pg_use "$PG_DEFAULT_URL" "local server on 127.0.0.1:5432"
        return 0
    fi
    svc_log "a server answers on 127.0.0.1:5432 but does not let user postgres in"
    return 1
}

# c: each Debian cluster under /etc/postgresql; start it if stopped.
pg_try_debian_cluster() {
    have pg_ctlcluster || return 1
    local conf version name port url
    for conf in /etc/postgresql/*/*/postgresql.conf; do
        [[ -e "$conf" ]] || continue
        version="$(basename "$(dirname "$(dirname "$conf")")")"
        name="$(basename "$(dirname "$conf")")"
        port="$(pg_cluster_port "$version" "$name")"
        url="postgres://postgres@127.0.0.1:$port/postgres"
        if ! pg_ctlcluster "$version" "$name" status >/dev/null 2>&1; then
            svc_log "starting Debian cluster $version/$name (port $port)"
            if ! pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start >&2; then
                svc_log "could not start cluster $version/$name"
                continue
            fi
        fi
        if ! pg_wait_ready 127.0.0.1 "$port"; then
            svc_log "cluster $version/$name does not accept connections on port $port"
            continue
        fi
        if pg_url_ok "$url"; then
            _pg_use "$url" "Debian cluster $version/$name on 127.0.0.1:$port"
            return 0
        fi
        # Debian's default pg_hba.conf asks for a password over TCP; rather than
        # rewrite the machine's configuration, fall through to a throwaway cluster.
        svc_log "cluster $version/$name does not let user postgres in over TCP without a password"
    done
    return 1
}

# Print the directory holding initdb and pg_ctl (newest Debian version, else PATH).
pg_find_bindir() {
    local dir best=""
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
        # Versions sort numerically by directory name (13, 14, 15, ...).
        if [[ -z "$best" ]] || (($(basename "$(dirname "$dir")") > $(basename "$(dirname "$best")"))); then
            best="$dir"
        fi
    done
    if [[ -z "$best" ]] && have initdb && have pg_ctl; then
        best="$(dirname "$(command -v initdb)")"
    fi
    [[ -n "$best" ]] && echo "$best"
}

# d: a throwaway cluster in a temp dir, trust auth, on a free port; stopped and
# deleted when the shell exits.
pg_try_throwaway() {
    local bindir dir data port attempt
    bindir="$(pg_find_bindir)" || return 1
    if is_root && ! id postgres >/dev/null 2>&1; then
        svc_log "initdb found but no 'postgres' OS user to run it as (initdb refuses root)"
        return 1
    fi
    pg_need_client || return 1

    # Under /tmp when root: the postgres user must be able to reach the directory.
    local parent="${TMPDIR:-/tmp}"
    is_root && parent=/tmp
    dir="$(mktemp -d "$parent/orgwall-pg.XXXXXX")" || return 1
    data="$dir/data"
    is_root && chown postgres: "$dir"
    chmod 700 "$dir"
    services_at_exit "$(printf 'pg_throwaway_stop %q %q' "$bindir" "$dir")"

    svc_log "initdb a throwaway cluster in $dir ($bindir)"
    # C.UTF-8 matches Debian's default clusters; plain C is the fallback.
    if ! (cd "$dir" && pg_as_owner "$bindir/initdb" -D "$data" -U postgres -A trust \
        -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1) &&
        ! (cd "$dir" && rm -rf "$data" && pg_as_owner "$bindir/initdb" -D "$data" -U postgres \
            -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1); then
        svc_log "initdb failed:"
        cat "$dir/initdb.log" >&2 || true
        return 1
    fi
    # TCP on 127.0.0.1 only, no Unix socket (no path or permission trouble), and
    # durability off: the data is thrown away anyway.
    cat >>"$data/postgresql.conf" <<'CONF'

# orgwall throwaway test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

    for attempt in 1 2 3 4 5; do
        # A random port in 20000..59999 that nothing listens on yet.
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_open 127.0.0.1 "$port" && continue
        if (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" \
            -o "-p $port" -w -t "$SERVICES_WAIT_SECS" start >/dev/null 2>&1); then
            if pg_url_ok "postgres://postgres@127.0.0.1:$port/postgres"; then
                _pg_use "postgres://postgres@127.0.0.1:$port/postgres" \
                    "throwaway cluster on 127.0.0.1:$port"
                return 0
            fi
            (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$data" -m immediate stop) >/dev/null 2>&1
        fi
        svc_log "throwaway cluster did not start on port $port (attempt $attempt)"
    done
    svc_log "server log:"
    cat "$dir/server.log" >&2 2>/dev/null || true
    return 1
}

# Exit-time cleanup of a throwaway cluster: stop it and delete its directory.
pg_throwaway_stop() {
    local bindir="$1" dir="$2"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        (cd "$dir" && pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop) >/dev/null 2>&1
    fi
    rm -rf "$dir"
}

# e: install Debian's PostgreSQL (which creates and may start cluster "main").
pg_try_install() {
    apt_install postgresql || return 1
    pg_try_local || pg_try_debian_cluster || pg_try_throwaway
}

# Find or provide PostgreSQL; see the top of this file for the order.
ensure_postgres() {
    SERVICES_PG_URL=""
    SERVICES_PG_DESC=""
    if pg_try_env || pg_try_local || pg_try_debian_cluster || pg_try_throwaway || pg_try_install; then
        return 0
    fi
    svc_log "ERROR: no PostgreSQL available. Tried \$ORGWALL_TEST_DATABASE_URL, \$DATABASE_URL,"
    svc_log "  127.0.0.1:5432 as user postgres, Debian clusters (pg_ctlcluster), a throwaway"
    svc_log "  cluster (initdb) and apt-get install postgresql. Start a server that user"
    svc_log "  postgres can reach without a password, or set DATABASE_URL to a superuser URL."
    return 1
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# True if the Redis at URL answers PING.
redis_url_ok() {
    have redis-cli || return 1
    [[ "$(timeout 5 redis-cli -u "$1" ping 2>/dev/null)" == PONG ]]
}

_redis_use() {
    SERVICES_REDIS_URL="$1"
    SERVICES_REDIS_DESC="$2"
}

# 0 and a: a URL from the environment.
redis_try_env() {
    local var url
    for var in ORGWALL_TEST_REDIS_URL REDIS_URL; do
        url="${!var:-}"
        [[ -n "$url" ]] || continue
        if redis_url_ok "$url"; then
            _redis_use "$url" "\$$var"
            return 0
        fi
        svc_log "\$$var is set but does not answer PING; looking further"
    done
    return 1
}

# b: a server already on 127.0.0.1:6379.
redis_try_local() {
    redis_url_ok "$REDIS_DEFAULT_URL" || return 1
    _redis_use "$REDIS_DEFAULT_URL" "local server on 127.0.0.1:6379"
}

# c: start redis-server on 127.0.0.1:6379 (daemonized, no persistence; left running).
redis_try_start() {
    have redis-server || return 1
    if port_open 127.0.0.1 6379; then
        svc_log "something listens on 127.0.0.1:6379 but does not answer redis-cli PING"
        return 1
    fi
    mkdir -p /var/lib/redis /var/log/redis || return 1
    if is_root && id redis >/dev/null 2>&1; then
        chown redis: /var/lib/redis /var/log/redis 2>/dev/null || true
    fi
    svc_log "starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2 || return 1
    local i
    for ((i = 0; i < SERVICES_WAIT_SECS; i++)); do
        if redis_url_ok "$REDIS_DEFAULT_URL"; then
            _redis_use "$REDIS_DEFAULT_URL" "redis-server started on 127.0.0.1:6379"
            return 0
        fi
        sleep 1
    done
    svc_log "redis-server did not answer PING; see /var/log/redis/ci.log"
    return 1
}

# d: install Debian's redis-server (brings redis-cli; may start the service).
redis_try_install() {
    apt_install redis-server || return 1
    redis_try_local || redis_try_start
}

# Find or provide Redis; returns 1 (after a message) if impossible.
ensure_redis() {
    SERVICES_REDIS_URL=""
    SERVICES_REDIS_DESC=""
    if redis_try_env || redis_try_local || redis_try_start || redis_try_install; then
        return 0
    fi
    svc_log "no Redis available (tried \$ORGWALL_TEST_REDIS_URL, \$REDIS_URL, 127.0.0.1:6379,"
    svc_log "  starting redis-server and apt-get install redis-server)"
    return 1
}

# ---------------------------------------------------------------------------
# S3 (moto)
# ---------------------------------------------------------------------------

# moto 5 serves every AWS API from one process; S3 is all the tests use.
MOTO_REQUIREMENT='moto[server]>=5,<6'
MOTO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/orgwall/moto-venv"

_s3_use() {
    SERVICES_S3_URL="$1"
    SERVICES_S3_DESC="$2"
}

# True if PYTHON can run moto's server.
s3_python_ok() {
    [[ -x "$1" ]] || have "$1" || return 1
    "$1" -c 'import moto.server' >/dev/null 2>&1
}

# 0: a URL from the environment (http://HOST:PORT), if something listens there.
s3_try_env() {
    local url="${ORGWALL_TEST_S3_URL:-}"
    [[ -n "$url" ]] || return 1
    if [[ "$url" =~ ^https?://([^/:]+):([0-9]+)/?$ ]] &&
        port_open "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"; then
        _s3_use "$url" "\$ORGWALL_TEST_S3_URL"
        return 0
    fi
    svc_log "\$ORGWALL_TEST_S3_URL is set but nothing listens at $url; looking further"
    return 1
}

# Start moto's server with PYTHON on a free port of 127.0.0.1; stopped at exit.
s3_start_with() {
    local py dir port attempt pid i
    # The interpreter itself, not a wrapper (a pyenv shim) whose pid would be the one
    # killed at exit while the server lives on.
    py="$("$1" -c 'import sys; print(sys.executable)')" || return 1
    dir="$(mktemp -d "${TMPDIR:-/tmp}/orgwall-s3.XXXXXX")" || return 1
    services_at_exit "$(printf 'rm -rf %q' "$dir")"
    for attempt in 1 2 3 4 5; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_open 127.0.0.1 "$port" && continue
        svc_log "starting moto on 127.0.0.1:$port ($py)"
        "$py" -m moto.server -H 127.0.0.1 -p "$port" </dev/null >"$dir/moto.log" 2>&1 &
        pid=$!
        services_at_exit "kill $pid 2>/dev/null || true"
        for ((i = 0; i < SERVICES_WAIT_SECS * 5; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            if port_open 127.0.0.1 "$port"; then
                _s3_use "http://127.0.0.1:$port" "moto on 127.0.0.1:$port"
                return 0
            fi
            sleep 0.2
        done
        kill "$pid" 2>/dev/null || true
        svc_log "moto did not start on port $port (attempt $attempt)"
    done
    svc_log "moto log:"
    cat "$dir/moto.log" >&2 || true
    return 1
}

# a: python3 on the PATH already has moto.
s3_try_path() {
    s3_python_ok python3 || return 1
    s3_start_with "$(command -v python3)"
}

# b: our venv has it.
s3_try_venv() {
    s3_python_ok "$MOTO_VENV/bin/python" || return 1
    s3_start_with "$MOTO_VENV/bin/python"
}

# c: make the venv and install moto into it from PyPI.
s3_try_install() {
    have python3 || apt_install python3 || return 1
    rm -rf "$MOTO_VENV"
    mkdir -p "$(dirname "$MOTO_VENV")" || return 1
    if ! python3 -m venv "$MOTO_VENV" >/dev/null 2>&1; then
        # Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
        rm -rf "$MOTO_VENV"
        apt_install python3-venv || return 1
        python3 -m venv "$MOTO_VENV" >&2 || return 1
    fi
    svc_log "pip install '$MOTO_REQUIREMENT' into $MOTO_VENV"
    "$MOTO_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "$MOTO_REQUIREMENT" >&2 || return 1
    s3_try_venv
}

# Find or provide an S3-compatible server; returns 1 (after a message) if impossible.
ensure_s3() {
    SERVICES_S3_URL=""
    SERVICES_S3_DESC=""
    if s3_try_env || s3_try_path || s3_try_venv || s3_try_install; then
        return 0
    fi
    svc_log "ERROR: no S3-compatible server available. Tried \$ORGWALL_TEST_S3_URL, moto"
    svc_log "  from python3 and from $MOTO_VENV, and pip install '$MOTO_REQUIREMENT'"
    svc_log "  into that venv. Install moto[server] or set ORGWALL_TEST_S3_URL."
    return 1
}

# ---------------------------------------------------------------------------
# Headless browser (the console's browser tests)
# ---------------------------------------------------------------------------
#
# ensure_chromium   sets SERVICES_CHROMIUM and SERVICES_CHROMEDRIVER (paths); returns 1
#                   with a message if Debian's chromium and chromium-driver are neither
#                   installed nor installable. First that works:
#   0. ORGWALL_TEST_CHROMIUM and ORGWALL_TEST_CHROMEDRIVER, if both are executable;
#   a. chromium (or chromium-browser, google-chrome) and chromedriver on the PATH;
#   b. apt-get install chromium chromium-driver, then a again.

chromium_try_env() {
    [[ -n "${ORGWALL_TEST_CHROMIUM:-}" && -x "${ORGWALL_TEST_CHROMIUM}" ]] || return 1
    [[ -n "${ORGWALL_TEST_CHROMEDRIVER:-}" && -x "${ORGWALL_TEST_CHROMEDRIVER}" ]] || return 1
    SERVICES_CHROMIUM="$ORGWALL_TEST_CHROMIUM"
    SERVICES_CHROMEDRIVER="$ORGWALL_TEST_CHROMEDRIVER"
}

chromium_try_path() {
    local browser driver
    browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
    driver="$(command -v chromedriver || true)"
    [[ -n "$browser" && -n "$driver" ]] || return 1
    SERVICES_CHROMIUM="$browser"
    SERVICES_CHROMEDRIVER="$driver"
}

ensure_chromium() {
    SERVICES_CHROMIUM=""
    SERVICES_CHROMEDRIVER=""
    if chromium_try_env || chromium_try_path; then
        return 0
    fi
    svc_log "chromium/chromedriver not found; installing Debian's chromium and chromium-driver"
    if apt_install chromium chromium-driver && chromium_try_path; then
        return 0
    fi
    svc_log "ERROR: no headless browser: install chromium and chromium-driver, or set"
    svc_log "  ORGWALL_TEST_CHROMIUM and ORGWALL_TEST_CHROMEDRIVER."
    return 1
}

# ---------------------------------------------------------------------------
# schemathesis (the API fuzzer .ci/run points at the OpenAPI document)
# ---------------------------------------------------------------------------

SCHEMATHESIS_REQUIREMENT='schemathesis>=4.32,<5'
SCHEMATHESIS_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/orgwall/schemathesis-venv"

schemathesis_ok() {
    [[ -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]] &&
        "$SCHEMATHESIS_VENV/bin/python" -c 'import schemathesis' >/dev/null 2>&1
}

# Find, or install from PyPI into our venv, the schemathesis CLI; sets SCHEMATHESIS.
ensure_schemathesis() {
    SCHEMATHESIS=""
    if ! schemathesis_ok; then
        have python3 || apt_install python3 || return 1
        rm -rf "$SCHEMATHESIS_VENV"
        mkdir -p "$(dirname "$SCHEMATHESIS_VENV")" || return 1
        if ! python3 -m venv "$SCHEMATHESIS_VENV" >/dev/null 2>&1; then
            rm -rf "$SCHEMATHESIS_VENV"
            apt_install python3-venv || return 1
            python3 -m venv "$SCHEMATHESIS_VENV" >&2 || return 1
        fi
        svc_log "pip install '$SCHEMATHESIS_REQUIREMENT' into $SCHEMATHESIS_VENV"
        if ! "$SCHEMATHESIS_VENV/bin/python" -m pip install -q --disable-pip-version-check \
            "$SCHEMATHESIS_REQUIREMENT" >&2 || ! schemathesis_ok; then
            svc_log "ERROR: could not install '$SCHEMATHESIS_REQUIREMENT' into $SCHEMATHESIS_VENV"
            return 1
        fi
    fi
    SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/schemathesis"
}
