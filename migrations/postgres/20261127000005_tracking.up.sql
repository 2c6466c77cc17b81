-- Tracking: metric points and their per-key summaries, key-value tags of
-- runs and projects, and soft deletion (MLflow's lifecycle_stage) (PostgreSQL).
-- Mirrors ../sqlite/20261127000005_tracking.up.sql.

-- One point of a metric series. `timestamp` is milliseconds since the
-- epoch, MLflow's unit. A NaN is stored as is_nan with value 0, as on
-- SQLite (which cannot store NaN); infinities are clipped to the largest
-- double, as MLflow does.
CREATE TABLE run_metrics (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX run_metrics_series_idx ON run_metrics (run_id, key, step);

-- The latest, min and max of each (run, key), kept in the same transaction
-- as the points, so tables, PQL and the optimizer never scan a series.
-- `last_*` is the point with the largest (step, timestamp), as in MLflow.
-- min and max ignore NaN and are NULL while only NaNs were logged.
CREATE TABLE run_metric_summaries (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    last_value DOUBLE PRECISION NOT NULL,
    last_is_nan BOOLEAN NOT NULL DEFAULT FALSE,
    last_step BIGINT NOT NULL,
    last_timestamp BIGINT NOT NULL,
    min_value DOUBLE PRECISION,
    max_value DOUBLE PRECISION,
    count BIGINT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_metric_summaries_key_idx ON run_metric_summaries (key, last_value);

-- Key-value tags (MLflow's), beside the list tags of Polyaxon.
CREATE TABLE run_tags (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE project_tags (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);

-- An MLflow experiment name that is not a valid project name ("My
-- experiment") is kept here; the project gets a slug of it.
ALTER TABLE projects ADD COLUMN experiment_name TEXT;
CREATE UNIQUE INDEX projects_experiment_name_idx ON projects (experiment_name);
-- Soft deletion: MLflow's delete and restore of experiments and runs.
ALTER TABLE projects ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE runs ADD COLUMN deleted_at TIMESTAMPTZ;
