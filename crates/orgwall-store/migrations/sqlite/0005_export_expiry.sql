-- Export archives expire: `expires_at` is set when the archive is done (the export then
-- reads `expired` from that moment on and is no longer served), `expired_at` when the
-- `export.expire` job has deleted its bytes. Archives built before this migration have
-- no `expires_at` and are kept until the org is deleted. The scoped view `exports`
-- selects every column, and the runner recreates its triggers from the new columns.
ALTER TABLE exports_rows ADD COLUMN expires_at INTEGER;
ALTER TABLE exports_rows ADD COLUMN expired_at INTEGER;
