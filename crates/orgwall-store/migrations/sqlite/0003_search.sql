-- Full-text search for tickets and notes (SQLite: FTS5).
--
-- The index holds tenant text, so it stands behind the same wall as the rows it indexes:
-- - it is named with the `_rows` convention (`<t>_fts_rows`), so the authorizer refuses
--   any read of it, and of its shadow tables (`<t>_fts_rows_data`, `_idx`, `_content`,
--   `_config`), that does not come through a view or trigger, and refuses any write to it
--   that does not come from a trigger (a virtual table cannot carry guard triggers);
-- - it is kept in sync only by the named triggers `orgwall_fts_<t>_rows_{ins,upd,del}` on
--   the base table, which the guard triggers on that base table have already checked;
-- - it is read only through the scoped view `<t>_fts` (org_id = app_org()).
-- The migration runner skips virtual tables; the doctor checks the view and the triggers.
--
-- Columns: `org_id` and `id` (UNINDEXED) name the row exactly; `org_key` is the org id
-- as one token, so every search starts from this org's own postings (the full-text
-- equivalent of an index leading with org_id); `doc_key` is the row id as one token, so
-- the sync triggers find an index row without scanning; `doc` is the searchable text.
-- Searches use `doc MATCH ...` only. The view does not expose the table's hidden column,
-- so bm25()/rank (whose statistics span every org) cannot be called through it.
-- Tokenizer: unicode61 without diacritic folding, which is what PostgreSQL's 'simple'
-- configuration does (case-folded whole words, no stemming), so both backends find the
-- same rows. columnsize=0: nothing ranks, so no per-row sizes are stored.
-- secure-delete: a deleted row's terms are removed from the index itself, not only masked
-- by a delete marker until the next merge, so deleted (and purged) text does not linger.

CREATE VIRTUAL TABLE tickets_fts_rows USING fts5(
    org_id UNINDEXED, id UNINDEXED, org_key, doc_key, doc,
    tokenize = 'unicode61 remove_diacritics 0', columnsize = 0
);

CREATE VIEW tickets_fts AS
    SELECT org_id, id, doc FROM tickets_fts_rows
    WHERE org_id = app_org()
      AND org_key MATCH ('"' || replace(coalesce(app_org(), ''), '-', '') || '"');

CREATE TRIGGER orgwall_fts_tickets_rows_ins AFTER INSERT ON tickets_rows BEGIN
    INSERT INTO tickets_fts_rows (org_id, id, org_key, doc_key, doc)
    VALUES (NEW.org_id, NEW.id, replace(NEW.org_id, '-', ''),
            replace(replace(NEW.id, '-', ''), '"', ''), NEW.title || char(10) || NEW.body);
END;
CREATE TRIGGER orgwall_fts_tickets_rows_upd AFTER UPDATE OF org_id, id, title, body ON tickets_rows
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.id IS NOT NEW.id
  OR OLD.title IS NOT NEW.title OR OLD.body IS NOT NEW.body
BEGIN
    DELETE FROM tickets_fts_rows
    WHERE doc_key MATCH ('"' || replace(replace(OLD.id, '-', ''), '"', '') || '"')
      AND org_id = OLD.org_id AND id = OLD.id;
    INSERT INTO tickets_fts_rows (org_id, id, org_key, doc_key, doc)
    VALUES (NEW.org_id, NEW.id, replace(NEW.org_id, '-', ''),
            replace(replace(NEW.id, '-', ''), '"', ''), NEW.title || char(10) || NEW.body);
END;
CREATE TRIGGER orgwall_fts_tickets_rows_del AFTER DELETE ON tickets_rows BEGIN
    DELETE FROM tickets_fts_rows
    WHERE doc_key MATCH ('"' || replace(replace(OLD.id, '-', ''), '"', '') || '"')
      AND org_id = OLD.org_id AND id = OLD.id;
END;

INSERT INTO tickets_fts_rows (tickets_fts_rows, rank) VALUES ('secure-delete', 1);

CREATE VIRTUAL TABLE notes_fts_rows USING fts5(
    org_id UNINDEXED, id UNINDEXED, org_key, doc_key, doc,
    tokenize = 'unicode61 remove_diacritics 0', columnsize = 0
);

CREATE VIEW notes_fts AS
    SELECT org_id, id, doc FROM notes_fts_rows
    WHERE org_id = app_org()
      AND org_key MATCH ('"' || replace(coalesce(app_org(), ''), '-', '') || '"');

CREATE TRIGGER orgwall_fts_notes_rows_ins AFTER INSERT ON notes_rows BEGIN
    INSERT INTO notes_fts_rows (org_id, id, org_key, doc_key, doc)
    VALUES (NEW.org_id, NEW.id, replace(NEW.org_id, '-', ''),
            replace(replace(NEW.id, '-', ''), '"', ''), NEW.title || char(10) || NEW.body);
END;
CREATE TRIGGER orgwall_fts_notes_rows_upd AFTER UPDATE OF org_id, id, title, body ON notes_rows
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.id IS NOT NEW.id
  OR OLD.title IS NOT NEW.title OR OLD.body IS NOT NEW.body
BEGIN
    DELETE FROM notes_fts_rows
    WHERE doc_key MATCH ('"' || replace(replace(OLD.id, '-', ''), '"', '') || '"')
      AND org_id = OLD.org_id AND id = OLD.id;
    INSERT INTO notes_fts_rows (org_id, id, org_key, doc_key, doc)
    VALUES (NEW.org_id, NEW.id, replace(NEW.org_id, '-', ''),
            replace(replace(NEW.id, '-', ''), '"', ''), NEW.title || char(10) || NEW.body);
END;
CREATE TRIGGER orgwall_fts_notes_rows_del AFTER DELETE ON notes_rows BEGIN
    DELETE FROM notes_fts_rows
    WHERE doc_key MATCH ('"' || replace(replace(OLD.id, '-', ''), '"', '') || '"')
      AND org_id = OLD.org_id AND id = OLD.id;
END;

INSERT INTO notes_fts_rows (notes_fts_rows, rank) VALUES ('secure-delete', 1);
