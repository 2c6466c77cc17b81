-- A param or output stored as a JSON string that spells a number (MLflow
-- sends every param as a string: "3", "0.01", "1e-05") is also indexed as
-- that number, so `params.layers:3`, `params.lr:>0.001` and sorting by a
-- param compare numbers. The grammar is JSON's number, nothing around it,
-- at most 40 characters and an exponent of at most two digits (so the cast
-- is always in range): the same as `trellis_domain::pql::numeric_text`,
-- and as ../sqlite/20261207000011_*.
CREATE OR REPLACE FUNCTION run_fields_rows(BIGINT, BIGINT, SMALLINT, JSONB)
RETURNS TABLE (run_id BIGINT, project_id BIGINT, source SMALLINT, key TEXT, text_value TEXT,
               num_value DOUBLE PRECISION)
LANGUAGE sql IMMUTABLE AS $$
    SELECT $1, $2, $3, j.key,
           CASE WHEN jsonb_typeof(j.value) = 'string' THEN j.value #>> '{}' END,
           CASE WHEN jsonb_typeof(j.value) = 'number' THEN (j.value #>> '{}')::float8
                WHEN jsonb_typeof(j.value) = 'string'
                     AND length((j.value #>> '{}')) <= 40 AND (j.value #>> '{}') ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,2})?$'
                THEN (j.value #>> '{}')::float8 END
    FROM jsonb_each($4) j
$$;

-- Rows written before this migration.
UPDATE run_fields SET num_value = text_value::float8
WHERE text_value IS NOT NULL AND length(text_value) <= 40 AND text_value ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,2})?$';
