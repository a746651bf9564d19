-- The GIN indexes of 0003 go (PostgreSQL; issue 13).
--
-- Under forced row-level security the server role never uses them (`@@` is not
-- LEAKPROOF; searches read the btree postings of 0006), yet every insert into `tickets`
-- and `notes` kept them, and a GIN index with `fastupdate` (the default) gathers new
-- entries in a pending list that the insert which fills it past `gin_pending_list_limit`
-- (4 MB) merges into the index, alone, while the other writers wait. Measured: one insert
-- of a ticket in every 19,533 took 131-209 ms where the others took 0.5 ms (pgbench, one
-- client, the same table shape); in the online-move benchmark, at 200 ticket writes a
-- second, one insert of the other org every 100 s or so took 150-200 ms on the CPU
-- (pg_stat_activity sampled every 10 ms: no wait event) while it held the org's usage row,
-- so its three other writers waited as long: the stall that stood as "other orgs' p99"
-- during a move. `fastupdate = off` spreads that work over every insert instead (14%
-- fewer inserts a second in the same test); nothing reads these indexes, so they go.
--
-- The stored `search` vectors stay: the terms triggers derive the postings from them and a
-- search re-checks `search @@ ...` on the rows it fetched by key.

DROP INDEX IF EXISTS tickets_search_idx;
DROP INDEX IF EXISTS notes_search_idx;
