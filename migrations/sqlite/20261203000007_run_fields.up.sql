-- Params (`runs.inputs`) and outputs (`runs.outputs`) as indexed key-value
-- rows, so that a PQL term on them (`params.model:cnn`, `outputs.acc:>0.9`)
-- reads an index range instead of parsing the JSON of every run of the
-- project. Triggers keep the rows equal to the JSON on every write path.
-- `source`: 0 for inputs, 1 for outputs. `text_value` is set for JSON
-- strings, `num_value` for JSON numbers; other types have neither.
CREATE TABLE run_fields (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL,
    source INTEGER NOT NULL,
    key TEXT NOT NULL,
    text_value TEXT,
    num_value REAL,
    PRIMARY KEY (run_id, source, key)
) WITHOUT ROWID;
CREATE INDEX run_fields_text_idx ON run_fields (project_id, source, key, text_value, run_id)
    WHERE text_value IS NOT NULL;
CREATE INDEX run_fields_num_idx ON run_fields (project_id, source, key, num_value, run_id)
    WHERE num_value IS NOT NULL;

CREATE TRIGGER run_fields_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 0, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value END
    FROM json_each(NEW.inputs) j;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 1, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value END
    FROM json_each(NEW.outputs) j;
END;

CREATE TRIGGER run_fields_inputs AFTER UPDATE OF inputs ON runs
WHEN NEW.inputs IS NOT OLD.inputs BEGIN
    DELETE FROM run_fields WHERE run_id = NEW.id AND source = 0;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 0, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value END
    FROM json_each(NEW.inputs) j;
END;

CREATE TRIGGER run_fields_outputs AFTER UPDATE OF outputs ON runs
WHEN NEW.outputs IS NOT OLD.outputs BEGIN
    DELETE FROM run_fields WHERE run_id = NEW.id AND source = 1;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 1, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value END
    FROM json_each(NEW.outputs) j;
END;

-- Runs written before this migration.
INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
SELECT r.id, r.project_id, 0, j.key,
       CASE WHEN j.type = 'text' THEN j.value END,
       CASE WHEN j.type IN ('integer', 'real') THEN j.value END
FROM runs r, json_each(r.inputs) j;
INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
SELECT r.id, r.project_id, 1, j.key,
       CASE WHEN j.type = 'text' THEN j.value END,
       CASE WHEN j.type IN ('integer', 'real') THEN j.value END
FROM runs r, json_each(r.outputs) j;
