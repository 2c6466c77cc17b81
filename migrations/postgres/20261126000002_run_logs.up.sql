-- Captured output of runs, line by line (PostgreSQL). The id is the cursor
-- a reader resumes from; one writer per run appends in order.
CREATE TABLE run_logs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    stream TEXT NOT NULL,
    text TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    CONSTRAINT run_logs_stream_check CHECK (stream IN ('stdout', 'stderr'))
);
CREATE INDEX run_logs_run_idx ON run_logs (run_id, id);
