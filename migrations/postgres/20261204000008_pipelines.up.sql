-- Runs a pipeline created: the trials of a matrix sweep and the operations
-- of a dag point at their controller run (PostgreSQL). Mirrors
-- ../sqlite/20261204000008_*. The controller keeps no other state: what
-- it has done is read back from these rows, so a restarted server carries
-- on where it stopped. Deleting a controller deletes its runs.
ALTER TABLE runs ADD COLUMN pipeline_id BIGINT REFERENCES runs (id) ON DELETE CASCADE;
-- The dag operation this run executes.
ALTER TABLE runs ADD COLUMN pipeline_op TEXT;
-- The trial's position in its sweep (0, 1, ...): its seed stream, and for
-- hyperband its bracket and rung.
ALTER TABLE runs ADD COLUMN pipeline_index INTEGER;
CREATE INDEX runs_pipeline_idx ON runs (pipeline_id, pipeline_index) WHERE pipeline_id IS NOT NULL;
