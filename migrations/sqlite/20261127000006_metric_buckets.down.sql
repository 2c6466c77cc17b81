DROP INDEX runs_project_live_idx;
DROP TABLE run_metric_buckets;
