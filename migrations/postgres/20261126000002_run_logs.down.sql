DROP TABLE run_logs;
