-- The live runs of a project by id (PostgreSQL). Mirrors
-- ../sqlite/20261205000010_*. A filtered count checks each matching id
-- against `runs` (right project, not deleted); from this index that check
-- is an index-only probe instead of a primary-key probe and a heap visit
-- (measured on 12,555 matches of 100k runs: the count from 27–34 ms to
-- 24–27 ms).
CREATE INDEX runs_live_ids_idx ON runs (project_id, id) WHERE deleted_at IS NULL;
