DROP TABLE queues;
DROP TABLE outbox;
ALTER TABLE runs DROP COLUMN heartbeat_at;
ALTER TABLE runs DROP COLUMN cloning_kind;
ALTER TABLE runs DROP COLUMN original_uuid;
ALTER TABLE runs DROP COLUMN pid;
ALTER TABLE runs DROP COLUMN executor;
