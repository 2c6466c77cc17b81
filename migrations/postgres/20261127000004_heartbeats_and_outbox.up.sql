-- Who executes a run and when it last said so, and the outbox of messages
-- to the work queue (PostgreSQL). Mirrors ../sqlite/20261127000004_*.
ALTER TABLE runs ADD COLUMN executor TEXT;
ALTER TABLE runs ADD COLUMN pid BIGINT;
-- A restart or copy points at the run it was made from.
ALTER TABLE runs ADD COLUMN original_uuid UUID;
ALTER TABLE runs ADD COLUMN cloning_kind TEXT CHECK (cloning_kind IN ('restart', 'copy'));
ALTER TABLE runs ADD COLUMN heartbeat_at TIMESTAMPTZ;

-- Messages written in the same transaction as the state change they
-- announce; a relay publishes them to the broker and deletes them once
-- confirmed, so a crash between the two never loses or invents a message.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Named queues defined through the API; the scheduler's `--queue` options
-- define the others.
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    concurrency BIGINT NOT NULL CHECK (concurrency >= 1),
    priority BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL
);
