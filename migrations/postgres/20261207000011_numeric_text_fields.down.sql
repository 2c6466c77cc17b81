-- Back to indexing JSON numbers only.
CREATE OR REPLACE FUNCTION run_fields_rows(BIGINT, BIGINT, SMALLINT, JSONB)
RETURNS TABLE (run_id BIGINT, project_id BIGINT, source SMALLINT, key TEXT, text_value TEXT,
               num_value DOUBLE PRECISION)
LANGUAGE sql IMMUTABLE AS $$
    SELECT $1, $2, $3, j.key,
           CASE WHEN jsonb_typeof(j.value) = 'string' THEN j.value #>> '{}' END,
           CASE WHEN jsonb_typeof(j.value) = 'number' THEN (j.value #>> '{}')::float8 END
    FROM jsonb_each($4) j
$$;

UPDATE run_fields SET num_value = NULL WHERE text_value IS NOT NULL;
