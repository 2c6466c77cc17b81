DROP TRIGGER run_fields_outputs;
DROP TRIGGER run_fields_inputs;
DROP TRIGGER run_fields_insert;
DROP TABLE run_fields;
