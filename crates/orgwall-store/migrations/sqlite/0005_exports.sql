-- Org exports (SQLite, a tenant table). An archive expires: `expires_at` is set when the
-- archive is done (the export then reads `expired` from that moment on and is no longer
-- served), `expired_at` when the `export.expire` job has deleted its bytes.

CREATE TABLE exports_rows (
    org_id TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress INTEGER NOT NULL DEFAULT 0,
    storage_key TEXT,
    size_bytes INTEGER,
    error TEXT,
    created_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    expires_at INTEGER,
    expired_at INTEGER,
    PRIMARY KEY (org_id, id)
);
