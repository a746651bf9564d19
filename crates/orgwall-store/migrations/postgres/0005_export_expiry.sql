-- Export archives expire: `expires_at` is set when the archive is done (the export then
-- reads `expired` from that moment on and is no longer served), `expired_at` when the
-- `export.expire` job has deleted its bytes. Archives built before this migration have
-- no `expires_at` and are kept until the org is deleted.
ALTER TABLE exports ADD COLUMN expires_at timestamptz;
ALTER TABLE exports ADD COLUMN expired_at timestamptz;
