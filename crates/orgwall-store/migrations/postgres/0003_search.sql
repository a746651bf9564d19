-- Full-text search for tickets and notes (PostgreSQL).
--
-- A stored generated tsvector per row (title and body) and a GIN index that leads with
-- org_id (btree_gin provides the uuid operator class; it is a trusted extension, so the
-- database owner may create it). Queries are `org_id = $1 AND search @@
-- plainto_tsquery('simple', $n)`, under row-level security as always.
--
-- Configuration 'simple', not 'english': tenant text is in any language, and 'english'
-- would stem and drop stop words for every org alike ("is", "the", "will" would never
-- match, other languages would be stemmed wrongly). 'simple' case-folds whole words, which
-- is what the SQLite backend's FTS5 tokenizer (unicode61, no diacritic folding) does, so
-- both backends find the same rows.
--
-- Note: ts_match_vq (the @@ operator) is not LEAKPROOF, so for the server role, under
-- FORCE ROW LEVEL SECURITY, the planner may not use `search @@ ...` as an index condition
-- (it would run before the policy). Searches as the server role therefore read the org's
-- rows through the primary key (org_id, id) and test the stored vectors; the GIN index
-- serves roles that row-level security does not apply to.

CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE tickets ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, title || ' ' || body)) STORED;
CREATE INDEX tickets_search_idx ON tickets USING gin (org_id, search);

ALTER TABLE notes ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, title || ' ' || body)) STORED;
CREATE INDEX notes_search_idx ON notes USING gin (org_id, search);
