-- The search terms tables of PostgreSQL's migration 0006 (issue 16), so the catalogue
-- is the same on both backends: `ticket_terms` and `note_terms` are tenant tables here
-- too (the runner generates their scoped views, guard triggers and the cascades from
-- tickets and notes; the doctor checks them).
--
-- They stay empty on SQLite. Search here reads the FTS5 indexes of 0003, which already
-- start from the org's own postings; SQLite has no tokenizer callable from SQL to fill
-- them with (a trigger cannot reach FTS5's tokenizer, and splitting text in trigger SQL
-- would only approximate it), and nothing reads them. They are derived tables
-- (`Module::derived_tables`): no export holds them.

CREATE TABLE ticket_terms_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    term TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (org_id, term, id),
    FOREIGN KEY (org_id, id) REFERENCES tickets_rows (org_id, id)
);

CREATE TABLE note_terms_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    term TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (org_id, term, id),
    FOREIGN KEY (org_id, id) REFERENCES notes_rows (org_id, id)
);
