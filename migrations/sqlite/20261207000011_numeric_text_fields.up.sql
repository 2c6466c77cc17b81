-- A param or output stored as a JSON string that spells a number (MLflow
-- sends every param as a string: "3", "0.01", "1e-05") is also indexed as
-- that number, so `params.layers:3`, `params.lr:>0.001` and sorting by a
-- param compare numbers. The grammar is JSON's number, nothing around it,
-- at most 40 characters and an exponent of at most two digits: the same as
-- `trellis_domain::pql::numeric_text`, and as ../postgres/20261207000011_*.
-- GLOBs rule out what JSON5 would accept (`+1`, `.5`, `0x10`, `Infinity`)
-- before `json_valid` checks the rest.

DROP TRIGGER run_fields_insert;
DROP TRIGGER run_fields_inputs;
DROP TRIGGER run_fields_outputs;

CREATE TRIGGER run_fields_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 0, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value
                WHEN j.type = 'text' AND length(j.value) <= 40 AND j.value GLOB '[0-9-]*' AND j.value GLOB '*[0-9]'
                     AND NOT j.value GLOB '*[xX]*' AND NOT j.value GLOB '*[eE]*[0-9][0-9][0-9]*'
                     AND json_valid(j.value) THEN CAST(j.value AS REAL) END
    FROM json_each(NEW.inputs) j;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 1, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value
                WHEN j.type = 'text' AND length(j.value) <= 40 AND j.value GLOB '[0-9-]*' AND j.value GLOB '*[0-9]'
                     AND NOT j.value GLOB '*[xX]*' AND NOT j.value GLOB '*[eE]*[0-9][0-9][0-9]*'
                     AND json_valid(j.value) THEN CAST(j.value AS REAL) END
    FROM json_each(NEW.outputs) j;
END;

CREATE TRIGGER run_fields_inputs AFTER UPDATE OF inputs ON runs
WHEN NEW.inputs IS NOT OLD.inputs BEGIN
    DELETE FROM run_fields WHERE run_id = NEW.id AND source = 0;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 0, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value
                WHEN j.type = 'text' AND length(j.value) <= 40 AND j.value GLOB '[0-9-]*' AND j.value GLOB '*[0-9]'
                     AND NOT j.value GLOB '*[xX]*' AND NOT j.value GLOB '*[eE]*[0-9][0-9][0-9]*'
                     AND json_valid(j.value) THEN CAST(j.value AS REAL) END
    FROM json_each(NEW.inputs) j;
END;

CREATE TRIGGER run_fields_outputs AFTER UPDATE OF outputs ON runs
WHEN NEW.outputs IS NOT OLD.outputs BEGIN
    DELETE FROM run_fields WHERE run_id = NEW.id AND source = 1;
    INSERT INTO run_fields (run_id, project_id, source, key, text_value, num_value)
    SELECT NEW.id, NEW.project_id, 1, j.key,
           CASE WHEN j.type = 'text' THEN j.value END,
           CASE WHEN j.type IN ('integer', 'real') THEN j.value
                WHEN j.type = 'text' AND length(j.value) <= 40 AND j.value GLOB '[0-9-]*' AND j.value GLOB '*[0-9]'
                     AND NOT j.value GLOB '*[xX]*' AND NOT j.value GLOB '*[eE]*[0-9][0-9][0-9]*'
                     AND json_valid(j.value) THEN CAST(j.value AS REAL) END
    FROM json_each(NEW.outputs) j;
END;

-- Rows written before this migration.
UPDATE run_fields SET num_value = CAST(text_value AS REAL)
WHERE text_value IS NOT NULL AND length(text_value) <= 40 AND text_value GLOB '[0-9-]*' AND text_value GLOB '*[0-9]'
                     AND NOT text_value GLOB '*[xX]*' AND NOT text_value GLOB '*[eE]*[0-9][0-9][0-9]*'
                     AND json_valid(text_value);
