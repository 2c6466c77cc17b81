-- Metric summaries carry their run's project (SQLite). Mirrors
-- ../postgres/20261205000009_*: a project page sorted by a metric walks
-- (project, key, value) in the page's order and stops after a page of
-- matching runs. A run never changes project, so the copy cannot go stale.
-- SQLite cannot add a NOT NULL column without a default; every insert
-- names the project, and 0 is no project's id.
ALTER TABLE run_metric_summaries ADD COLUMN project_id INTEGER NOT NULL DEFAULT 0;
UPDATE run_metric_summaries SET project_id = (SELECT r.project_id FROM runs r WHERE r.id = run_metric_summaries.run_id);
DROP INDEX run_metric_summaries_key_idx;
CREATE INDEX run_metric_summaries_project_idx
    ON run_metric_summaries (project_id, key, last_value, run_id) WHERE NOT last_is_nan;
