DROP INDEX run_metric_summaries_project_idx;
CREATE INDEX run_metric_summaries_key_idx ON run_metric_summaries (key, last_value);
ALTER TABLE run_metric_summaries DROP COLUMN project_id;
