#!/usr/bin/env bash
#
# bench/search-rls/run.sh: full-text search under row-level security, before and after
# the search terms tables (issue 16, migration orgwall 0006), in a 1,000,000-ticket org.
#
# In a scratch database (created here, dropped on exit, whatever happens):
#   1. `orgwall migrate` (the build at target/debug/orgwall, or $ORGWALL_BIN): the whole
#      schema, terms tables and triggers included;
#   2. two orgs: a large one with $TICKETS tickets (default 1,000,000) and a small one with
#      1,000; titles and bodies from the bench's 16 words (the common word `login` is in
#      about 1 ticket in 6), a unique ticket number each, and the rare word `zanzibar` in
#      5 tickets of the large org; inserted as the owner (the triggers fill the terms),
#      then VACUUM ANALYZE;
#   3. as the server role with the large org's scope (the server's prelude: role
#      orgwall_app, app.org_id), prepared statements like the server's, `limit=50`, first
#      page, for `zanzibar` (rare) and `login` (common):
#        before: the statement of repo/search.rs before migration 0006
#                (`... AND search @@ plainto_tsquery('simple', $3) ORDER BY id LIMIT $4`);
#        after:  the statement it sends now (the rarest lexeme's postings, then the rows
#                by primary key, re-checked with @@);
#      each run $RUNS times (default 15) after 3 warm-up runs; prints the median
#      `Execution Time` of EXPLAIN ANALYZE and one full plan of each;
#   4. the backfill migration 0006 runs on existing rows (its INSERT ... SELECT, timed
#      again on the loaded tables).
#
# The terms tables do not change the "before" statement's plan (it does not read them), so
# one database serves both. Heavy: waits while /tmp/bench.lock exists (another benchmark
# needs the machine idle), polling every 30 s.
#
# Env: ORGWALL_BENCH_DATABASE_URL (admin URL of a superuser; default
# postgres://postgres@127.0.0.1:5432/postgres), TICKETS, RUNS, ORGWALL_BIN.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ADMIN_URL="${ORGWALL_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TICKETS="${TICKETS:-1000000}"
RUNS="${RUNS:-15}"
BIN="${ORGWALL_BIN:-$ROOT/target/debug/orgwall}"
DB="orgwall_search_rls_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
BIG=00000000-0000-7000-8000-000000000001
SMALL=00000000-0000-7000-8000-000000000002

wait_idle() {
    while [[ -e /tmp/bench.lock ]]; do
        echo "search-rls: /tmp/bench.lock exists; waiting" >&2
        sleep 30
    done
}
wait_idle

admin() { psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }
db() { psql "$DB_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }

TMP=$(mktemp -d)
cleanup() {
    admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
    rm -rf "$TMP"
}
trap cleanup EXIT
admin -c "CREATE DATABASE $DB"

echo "search-rls: migrating $DB"
DATABASE_URL="$DB_URL" ORGWALL_LOG=warn "$BIN" migrate >/dev/null

echo "search-rls: seeding $TICKETS tickets"
start=$(date +%s)
db <<SQL
INSERT INTO orgs (id, slug, name, plan, created_at, updated_at)
VALUES ('$BIG', 'big', 'Big', 'free', now(), now()), ('$SMALL', 'small', 'Small', 'free', now(), now());
INSERT INTO projects (org_id, id, key, name, created_at, updated_at)
VALUES ('$BIG', '$BIG', 'BIG', 'Big', now(), now()), ('$SMALL', '$SMALL', 'SML', 'Small', now(), now());
CREATE TEMP TABLE words AS
SELECT ARRAY['login', 'billing', 'export', 'timeout', 'database', 'invoice', 'search', 'upload',
             'report', 'webhook', 'permission', 'email', 'dashboard', 'mobile', 'payment',
             'latency'] AS w;
INSERT INTO tickets (org_id, id, project_id, title, body, status, created_at, updated_at)
SELECT o.id,
       -- UUIDv7-like ids, in insertion order, distinct per org.
       ('0190' || lpad(to_hex(o.n), 4, '0') || '-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       o.id,
       initcap(w[1 + g % 16]) || ' ' || w[1 + (g / 16) % 16] || ' problem',
       'Customers report ' || w[1 + (g * 7) % 16] || ' and ' || w[1 + (g * 11 + 3) % 16]
           || ' trouble since the last release; see ticket ' || g || '.'
           || CASE WHEN o.n = 1 AND g % ($TICKETS / 5) = 12345 % ($TICKETS / 5) THEN ' zanzibar' ELSE '' END,
       'open', now(), now()
FROM words, (VALUES ('$BIG'::uuid, 1, $TICKETS), ('$SMALL'::uuid, 2, 1000)) AS o (id, n, count),
     generate_series(1, o.count) AS g;
SQL
db -c "VACUUM ANALYZE"
echo "search-rls: seeded in $(($(date +%s) - start)) s: $(db -c "SELECT count(*) FROM tickets WHERE org_id = '$BIG'") tickets in the large org, $(db -c "SELECT count(*) FROM ticket_terms") term rows; zanzibar: $(db -c "SELECT count(*) FROM ticket_terms WHERE term = 'zanzibar'"), login: $(db -c "SELECT count(*) FROM ticket_terms WHERE org_id = '$BIG' AND term = 'login'")"

COLS="id, project_id, title, body, status, assignee_id, created_at"
BEFORE="SELECT $COLS FROM tickets WHERE org_id = \$1 AND id > \$2 AND search @@ plainto_tsquery('simple', \$3::text) ORDER BY id LIMIT \$4"
# The statement of crates/orgwall-store/src/repo/search.rs (PostgreSQL) as repo/tickets.rs
# sends it; keep the two in step.
AFTER="SELECT $COLS FROM (SELECT r.* FROM ticket_terms p JOIN tickets r ON r.org_id = p.org_id AND r.id = p.id
      WHERE p.org_id = \$1 AND p.id > \$2 AND p.term = (
        SELECT l.term FROM unnest(tsvector_to_array(to_tsvector('simple', \$3::text))) AS l (term)
        ORDER BY CASE WHEN length(to_tsvector('simple', \$3::text)) > 1 THEN (
            SELECT count(*) FROM (
                SELECT FROM ticket_terms c WHERE c.org_id = \$1 AND c.term = l.term
                LIMIT 1000) c) END,
          length(l.term) DESC, l.term
        LIMIT 1)) tickets
 WHERE org_id = \$1 AND id > \$2 AND search @@ plainto_tsquery('simple', \$3::text) ORDER BY id LIMIT \$4"

# measure NAME SQL WORD: median execution time (ms) over RUNS, as the server role.
measure() {
    local name=$1 sql=$2 word=$3
    local args="('$BIG', '00000000-0000-0000-0000-000000000000', '$word', 50)"
    {
        echo "BEGIN READ ONLY;"
        echo "SELECT set_config('role', 'orgwall_app', true), set_config('app.org_id', '$BIG', true) \\g /dev/null"
        echo "PREPARE q (uuid, uuid, text, bigint) AS $sql;"
        for _ in 1 2 3; do echo "EXECUTE q $args \\g /dev/null"; done
        for _ in $(seq "$RUNS"); do
            echo "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE q $args;"
        done
        echo "COMMIT;"
    } | db >"$TMP/out"
    local workers
    workers=$(grep -c '"Workers Launched"' "$TMP/out" || true)
    grep -o '"Execution Time": [0-9.]*' "$TMP/out" | awk '{print $3}' | sort -n |
        awk -v name="$name" -v w="$workers" '{ t[NR] = $1 } END { printf "%-24s median %8.3f ms  (min %.3f, max %.3f, %d runs, %d with parallel workers)\n", name, t[int((NR + 1) / 2)], t[1], t[NR], NR, w }'
}

plan() {
    local sql=$1 word=$2
    {
        echo "BEGIN READ ONLY;"
        echo "SELECT set_config('role', 'orgwall_app', true), set_config('app.org_id', '$BIG', true) \\g /dev/null"
        echo "PREPARE q (uuid, uuid, text, bigint) AS $sql;"
        echo "EXECUTE q ('$BIG', '00000000-0000-0000-0000-000000000000', '$word', 50) \\g /dev/null"
        echo "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q ('$BIG', '00000000-0000-0000-0000-000000000000', '$word', 50);"
        echo "COMMIT;"
    } | db
}

wait_idle
echo
echo "search-rls: as the server role, limit 50, first page ($RUNS runs each)"
measure "before, rare (zanzibar)" "$BEFORE" zanzibar
measure "after,  rare (zanzibar)" "$AFTER" zanzibar
measure "before, common (login)" "$BEFORE" login
measure "after,  common (login)" "$AFTER" login
measure "before, both words" "$BEFORE" "login zanzibar"
measure "after,  both words" "$AFTER" "login zanzibar"
echo
echo "--- plan before, rare"
plan "$BEFORE" zanzibar
echo "--- plan after, rare"
plan "$AFTER" zanzibar
echo "--- plan after, common"
plan "$AFTER" login

wait_idle
echo
echo "search-rls: the backfill of migration 0006 on these rows"
db <<SQL
\timing on
BEGIN;
TRUNCATE ticket_terms;
INSERT INTO ticket_terms (org_id, term, id)
SELECT t.org_id, l.term, t.id FROM tickets t, unnest(tsvector_to_array(t.search)) AS l (term);
ROLLBACK;
SQL
