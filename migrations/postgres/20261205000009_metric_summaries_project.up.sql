-- Metric summaries carry their run's project (PostgreSQL). Mirrors
-- ../sqlite/20261205000009_*. A project page sorted by a metric then walks
-- one index range, (project, key, value), in the page's order and stops
-- after a page of matching runs, instead of sorting every match; and a
-- PQL term on a metric reads that project's range only, not every
-- project's. A run never changes project, so the copy cannot go stale.
ALTER TABLE run_metric_summaries ADD COLUMN project_id BIGINT;
UPDATE run_metric_summaries s SET project_id = r.project_id FROM runs r WHERE r.id = s.run_id;
ALTER TABLE run_metric_summaries ALTER COLUMN project_id SET NOT NULL;
DROP INDEX run_metric_summaries_key_idx;
-- NaN sorts and compares as missing, so NaN rows stay out of the index.
CREATE INDEX run_metric_summaries_project_idx
    ON run_metric_summaries (project_id, key, last_value, run_id) WHERE NOT last_is_nan;
