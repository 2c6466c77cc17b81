-- The live runs of a project by id (SQLite). Mirrors
-- ../postgres/20261205000010_*, where a filtered count probes it instead
-- of the table for each matching id.
CREATE INDEX runs_live_ids_idx ON runs (project_id, id) WHERE deleted_at IS NULL;
