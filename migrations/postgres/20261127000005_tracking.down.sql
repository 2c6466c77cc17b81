ALTER TABLE runs DROP COLUMN deleted_at;
ALTER TABLE projects DROP COLUMN deleted_at;
DROP INDEX projects_experiment_name_idx;
ALTER TABLE projects DROP COLUMN experiment_name;
DROP TABLE project_tags;
DROP TABLE run_tags;
DROP TABLE run_metric_summaries;
DROP TABLE run_metrics;
