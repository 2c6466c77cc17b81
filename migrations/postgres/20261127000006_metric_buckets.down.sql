DROP TABLE run_metric_buckets;
