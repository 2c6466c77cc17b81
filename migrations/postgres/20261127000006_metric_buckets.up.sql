-- Metric buckets: each series folded into buckets of 16, 256, 4096 and
-- 65,536 steps (levels 1 to 4), so a chart of a million points reads a few
-- thousand rows (PostgreSQL). Mirrors ../sqlite/20261127000006_metric_buckets.up.sql.
-- The read plan lives in trellis_domain::series.

-- `count` counts every point of the bucket, NaN included; the min and max
-- (with the step and time where they occur) ignore NaN and are NULL when
-- the bucket holds only NaN. Written in the same transaction as the points.
CREATE TABLE run_metric_buckets (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    level SMALLINT NOT NULL,
    bucket BIGINT NOT NULL,
    count BIGINT NOT NULL,
    min_value DOUBLE PRECISION,
    min_step BIGINT,
    min_timestamp BIGINT,
    max_value DOUBLE PRECISION,
    max_step BIGINT,
    max_timestamp BIGINT,
    PRIMARY KEY (run_id, key, level, bucket)
);

-- Series logged before this migration: fold their points into buckets.
INSERT INTO run_metric_buckets (run_id, key, level, bucket, count, min_value, min_step,
    min_timestamp, max_value, max_step, max_timestamp)
SELECT c.run_id, c.key, 1, c.bucket, c.n, lo.value, lo.step, lo.timestamp, hi.value, hi.step, hi.timestamp
FROM (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END) AS bucket, COUNT(*) AS n
      FROM run_metrics GROUP BY run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END)) c
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END) ORDER BY value, step) AS rank
           FROM run_metrics WHERE NOT is_nan) lo
  ON lo.run_id = c.run_id AND lo.key = c.key AND lo.bucket = c.bucket AND lo.rank = 1
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 16 ELSE -((-step - 1) / 16) - 1 END) ORDER BY value DESC, step) AS rank
           FROM run_metrics WHERE NOT is_nan) hi
  ON hi.run_id = c.run_id AND hi.key = c.key AND hi.bucket = c.bucket AND hi.rank = 1;
INSERT INTO run_metric_buckets (run_id, key, level, bucket, count, min_value, min_step,
    min_timestamp, max_value, max_step, max_timestamp)
SELECT c.run_id, c.key, 2, c.bucket, c.n, lo.value, lo.step, lo.timestamp, hi.value, hi.step, hi.timestamp
FROM (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END) AS bucket, COUNT(*) AS n
      FROM run_metrics GROUP BY run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END)) c
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END) ORDER BY value, step) AS rank
           FROM run_metrics WHERE NOT is_nan) lo
  ON lo.run_id = c.run_id AND lo.key = c.key AND lo.bucket = c.bucket AND lo.rank = 1
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 256 ELSE -((-step - 1) / 256) - 1 END) ORDER BY value DESC, step) AS rank
           FROM run_metrics WHERE NOT is_nan) hi
  ON hi.run_id = c.run_id AND hi.key = c.key AND hi.bucket = c.bucket AND hi.rank = 1;
INSERT INTO run_metric_buckets (run_id, key, level, bucket, count, min_value, min_step,
    min_timestamp, max_value, max_step, max_timestamp)
SELECT c.run_id, c.key, 3, c.bucket, c.n, lo.value, lo.step, lo.timestamp, hi.value, hi.step, hi.timestamp
FROM (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END) AS bucket, COUNT(*) AS n
      FROM run_metrics GROUP BY run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END)) c
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END) ORDER BY value, step) AS rank
           FROM run_metrics WHERE NOT is_nan) lo
  ON lo.run_id = c.run_id AND lo.key = c.key AND lo.bucket = c.bucket AND lo.rank = 1
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 4096 ELSE -((-step - 1) / 4096) - 1 END) ORDER BY value DESC, step) AS rank
           FROM run_metrics WHERE NOT is_nan) hi
  ON hi.run_id = c.run_id AND hi.key = c.key AND hi.bucket = c.bucket AND hi.rank = 1;
INSERT INTO run_metric_buckets (run_id, key, level, bucket, count, min_value, min_step,
    min_timestamp, max_value, max_step, max_timestamp)
SELECT c.run_id, c.key, 4, c.bucket, c.n, lo.value, lo.step, lo.timestamp, hi.value, hi.step, hi.timestamp
FROM (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END) AS bucket, COUNT(*) AS n
      FROM run_metrics GROUP BY run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END)) c
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END) ORDER BY value, step) AS rank
           FROM run_metrics WHERE NOT is_nan) lo
  ON lo.run_id = c.run_id AND lo.key = c.key AND lo.bucket = c.bucket AND lo.rank = 1
LEFT JOIN (SELECT run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END) AS bucket, step, timestamp, value,
           ROW_NUMBER() OVER (PARTITION BY run_id, key, (CASE WHEN step >= 0 THEN step / 65536 ELSE -((-step - 1) / 65536) - 1 END) ORDER BY value DESC, step) AS rank
           FROM run_metrics WHERE NOT is_nan) hi
  ON hi.run_id = c.run_id AND hi.key = c.key AND hi.bucket = c.bucket AND hi.rank = 1;

-- The runs tables list live runs (not deleted) of a project newest first,
-- and count them: this index answers both without reading the rows.
CREATE INDEX runs_project_live_idx ON runs (project_id, created_at, id) WHERE deleted_at IS NULL;
