-- Queues bind to an executor (NULL: the scheduler's default); runs keep
-- their compiled spec (versioned JSON, written at submission) and where a
-- service's declared ports listen (JSON: declared port -> address).
ALTER TABLE queues ADD COLUMN executor TEXT;
ALTER TABLE runs ADD COLUMN compiled TEXT;
ALTER TABLE runs ADD COLUMN endpoints TEXT;
-- What the scheduler reads every tick: runs by status, oldest change first
-- (without it each tick scans the whole table).
CREATE INDEX runs_status_idx ON runs (status, updated_at, id);
-- Runs submitted before specs were stored, found at start-up without a scan.
CREATE INDEX runs_uncompiled_idx ON runs (id) WHERE compiled IS NULL AND content <> '';
