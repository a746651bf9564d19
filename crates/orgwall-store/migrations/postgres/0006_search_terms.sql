-- Search under row-level security (PostgreSQL; issue 16).
--
-- `@@` (ts_match_vq) is not LEAKPROOF, so under FORCE ROW LEVEL SECURITY the planner may
-- not use the GIN index of 0003 for the server role: a search read every row of the org.
-- These tables are an inverted index the server role *can* use: one row per distinct
-- lexeme of a row's `search` vector, keyed (org_id, term, id), so a search reads one
-- lexeme's postings in id order with equality on text and uuid (leakproof operators, an
-- ordinary btree under the ordinary org_isolation policy), fetches those rows by primary
-- key and re-checks the full `search @@ plainto_tsquery('simple', q)` on them (see
-- `repo/search.rs`).
--
-- They are tenant tables (the runner applies RLS, the policy and grants; the doctor and
-- the catalogue-driven tests walk them) and *derived* tables (`Module::derived_tables`):
-- kept only by the triggers below, left out of exports. Deleting a row deletes its terms
-- (composite foreign key, declared as a Cascade); deleting an org deletes them through
-- org_id -> orgs.
--
-- The triggers are ENABLE ALWAYS, so they also fire under session_replication_role =
-- replica (the bench's COPY seeding), where ordinary triggers (and the foreign-key
-- checks) do not. Inserts: one statement-level trigger with a transition table (a COPY
-- or multi-row INSERT fills the terms in one statement). Updates: a row trigger on title
-- and body that runs only when the vector changed and moves only the difference.
-- The functions are SECURITY INVOKER: they write as the writer, under its policy.

CREATE TABLE ticket_terms (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    term text NOT NULL,
    id uuid NOT NULL,
    PRIMARY KEY (org_id, term, id),
    CONSTRAINT ticket_terms_ticket_fkey FOREIGN KEY (org_id, id)
        REFERENCES tickets (org_id, id) ON DELETE CASCADE
);

CREATE TABLE note_terms (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    term text NOT NULL,
    id uuid NOT NULL,
    PRIMARY KEY (org_id, term, id),
    CONSTRAINT note_terms_note_fkey FOREIGN KEY (org_id, id)
        REFERENCES notes (org_id, id) ON DELETE CASCADE
);

-- No parallel scans of the postings: a search reads a handful of index entries, but the
-- planner cannot know how many (the lexeme is chosen at run time), and with a rare word's
-- low @@ selectivity it would otherwise start a worker (measured: 5.8 ms instead of
-- 0.1 ms for 5 rows in a 1,000,000-ticket org).
ALTER TABLE ticket_terms SET (parallel_workers = 0);
ALTER TABLE note_terms SET (parallel_workers = 0);

-- Inserted rows: every distinct lexeme of each new row's stored vector.
CREATE FUNCTION orgwall_ticket_terms_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO ticket_terms (org_id, term, id)
    SELECT n.org_id, l.term, n.id
    FROM orgwall_new_rows n, unnest(tsvector_to_array(n.search)) AS l (term);
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_note_terms_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    INSERT INTO note_terms (org_id, term, id)
    SELECT n.org_id, l.term, n.id
    FROM orgwall_new_rows n, unnest(tsvector_to_array(n.search)) AS l (term);
    RETURN NULL;
END
$$;

-- An updated row: the lexemes it lost go, the lexemes it gained come.
CREATE FUNCTION orgwall_ticket_terms_update() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    DELETE FROM ticket_terms
    WHERE org_id = OLD.org_id AND id = OLD.id AND term IN (
        SELECT unnest(tsvector_to_array(OLD.search))
        EXCEPT SELECT unnest(tsvector_to_array(NEW.search)));
    INSERT INTO ticket_terms (org_id, term, id)
    SELECT NEW.org_id, l.term, NEW.id
    FROM (SELECT unnest(tsvector_to_array(NEW.search))
          EXCEPT SELECT unnest(tsvector_to_array(OLD.search))) AS l (term);
    RETURN NULL;
END
$$;

CREATE FUNCTION orgwall_note_terms_update() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    DELETE FROM note_terms
    WHERE org_id = OLD.org_id AND id = OLD.id AND term IN (
        SELECT unnest(tsvector_to_array(OLD.search))
        EXCEPT SELECT unnest(tsvector_to_array(NEW.search)));
    INSERT INTO note_terms (org_id, term, id)
    SELECT NEW.org_id, l.term, NEW.id
    FROM (SELECT unnest(tsvector_to_array(NEW.search))
          EXCEPT SELECT unnest(tsvector_to_array(OLD.search))) AS l (term);
    RETURN NULL;
END
$$;

CREATE TRIGGER orgwall_ticket_terms_insert AFTER INSERT ON tickets
    REFERENCING NEW TABLE AS orgwall_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_ticket_terms_insert();
CREATE TRIGGER orgwall_ticket_terms_update AFTER UPDATE OF title, body ON tickets
    FOR EACH ROW WHEN (OLD.search IS DISTINCT FROM NEW.search)
    EXECUTE FUNCTION orgwall_ticket_terms_update();
CREATE TRIGGER orgwall_note_terms_insert AFTER INSERT ON notes
    REFERENCING NEW TABLE AS orgwall_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION orgwall_note_terms_insert();
CREATE TRIGGER orgwall_note_terms_update AFTER UPDATE OF title, body ON notes
    FOR EACH ROW WHEN (OLD.search IS DISTINCT FROM NEW.search)
    EXECUTE FUNCTION orgwall_note_terms_update();

ALTER TABLE tickets ENABLE ALWAYS TRIGGER orgwall_ticket_terms_insert;
ALTER TABLE tickets ENABLE ALWAYS TRIGGER orgwall_ticket_terms_update;
ALTER TABLE notes ENABLE ALWAYS TRIGGER orgwall_note_terms_insert;
ALTER TABLE notes ENABLE ALWAYS TRIGGER orgwall_note_terms_update;

-- The rows that exist already. The migration runs as the tables' owner, which forced
-- row-level security confines like any role (with no app.org_id: no rows), so the force
-- is lifted for the backfill and restored in the same transaction (nothing else sees the
-- gap: ALTER TABLE holds an exclusive lock until commit; the runner asserts it again
-- after the migrations). The new tables have no walls until the runner adds them.
ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE notes NO FORCE ROW LEVEL SECURITY;
INSERT INTO ticket_terms (org_id, term, id)
SELECT t.org_id, l.term, t.id FROM tickets t, unnest(tsvector_to_array(t.search)) AS l (term);
INSERT INTO note_terms (org_id, term, id)
SELECT n.org_id, l.term, n.id FROM notes n, unnest(tsvector_to_array(n.search)) AS l (term);
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;

ANALYZE ticket_terms;
ANALYZE note_terms;
