DROP TRIGGER run_fields_sync ON runs;
DROP FUNCTION run_fields_sync();
DROP FUNCTION run_fields_rows(BIGINT, BIGINT, SMALLINT, JSONB);
DROP TABLE run_fields;
