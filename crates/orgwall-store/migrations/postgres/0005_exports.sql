-- Org exports (PostgreSQL, a tenant table). An archive expires: `expires_at` is set when
-- the archive is done (the export then reads `expired` from that moment on and is no
-- longer served), `expired_at` when the `export.expire` job has deleted its bytes.

CREATE TABLE exports (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id uuid NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress integer NOT NULL DEFAULT 0,
    storage_key text,
    size_bytes bigint,
    error text,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    expires_at timestamptz,
    expired_at timestamptz,
    PRIMARY KEY (org_id, id)
);
