DROP INDEX runs_pipeline_idx;
ALTER TABLE runs DROP COLUMN pipeline_index;
ALTER TABLE runs DROP COLUMN pipeline_op;
ALTER TABLE runs DROP COLUMN pipeline_id;
