-- Back to indexing JSON numbers only.
DROP TRIGGER run_fields_insert;
DROP TRIGGER run_fields_inputs;
DROP TRIGGER run_fields_outputs;

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

UPDATE run_fields SET num_value = NULL WHERE text_value IS NOT NULL;
