-- Params (`runs.inputs`) and outputs (`runs.outputs`) as indexed key-value
-- rows, so that a PQL term on them (`params.model:cnn`, `outputs.acc:>0.9`)
-- reads an index range instead of parsing the JSON of every run of the
-- project. A trigger keeps the rows equal to the JSON on every write path.
-- `source`: 0 for inputs, 1 for outputs. `text_value` is set for JSON
-- strings, `num_value` for JSON numbers; other types have neither.
CREATE TABLE run_fields (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL,
    source SMALLINT NOT NULL,
    key TEXT NOT NULL,
    text_value TEXT,
    num_value DOUBLE PRECISION,
    PRIMARY KEY (run_id, source, key)
);
CREATE INDEX run_fields_text_idx ON run_fields (project_id, source, key, text_value, run_id)
    WHERE text_value IS NOT NULL;
CREATE INDEX run_fields_num_idx ON run_fields (project_id, source, key, num_value, run_id)
    WHERE num_value IS NOT NULL;

CREATE FUNCTION run_fields_rows(BIGINT, BIGINT, SMALLINT, JSONB)
RETURNS TABLE (run_id BIGINT, project_id BIGINT, source SMALLINT, key TEXT, text_value TEXT,
               num_value DOUBLE PRECISION)
LANGUAGE sql IMMUTABLE AS $$
    SELECT $1, $2, $3, j.key,
           CASE WHEN jsonb_typeof(j.value) = 'string' THEN j.value #>> '{}' END,
           CASE WHEN jsonb_typeof(j.value) = 'number' THEN (j.value #>> '{}')::float8 END
    FROM jsonb_each($4) j
$$;

CREATE FUNCTION run_fields_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.inputs IS DISTINCT FROM OLD.inputs THEN
        DELETE FROM run_fields f WHERE f.run_id = NEW.id AND f.source = 0;
        INSERT INTO run_fields SELECT * FROM run_fields_rows(NEW.id, NEW.project_id, 0::smallint, NEW.inputs);
    END IF;
    IF TG_OP = 'INSERT' OR NEW.outputs IS DISTINCT FROM OLD.outputs THEN
        DELETE FROM run_fields f WHERE f.run_id = NEW.id AND f.source = 1;
        INSERT INTO run_fields SELECT * FROM run_fields_rows(NEW.id, NEW.project_id, 1::smallint, NEW.outputs);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_fields_sync AFTER INSERT OR UPDATE OF inputs, outputs ON runs
    FOR EACH ROW EXECUTE FUNCTION run_fields_sync();

-- Runs written before this migration.
INSERT INTO run_fields SELECT f.* FROM runs r, run_fields_rows(r.id, r.project_id, 0::smallint, r.inputs) f;
INSERT INTO run_fields SELECT f.* FROM runs r, run_fields_rows(r.id, r.project_id, 1::smallint, r.outputs) f;
