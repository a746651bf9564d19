-- Access generations (see the PostgreSQL twin). SQLite is one embedded server: the
-- transaction that changes access invalidates the process's cache on commit, so nothing
-- reads or bumps these counters here; the table exists so both backends have the same
-- tables (and a scope's load reads a generation of 0).
CREATE TABLE access_generations (
    dep TEXT PRIMARY KEY,
    gen INTEGER NOT NULL
);
