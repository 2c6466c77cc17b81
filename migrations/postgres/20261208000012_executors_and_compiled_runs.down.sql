DROP INDEX runs_uncompiled_idx;
DROP INDEX runs_status_idx;
ALTER TABLE runs DROP COLUMN endpoints;
ALTER TABLE runs DROP COLUMN compiled;
ALTER TABLE queues DROP COLUMN executor;
