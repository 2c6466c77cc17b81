-- Projects, runs and their append-only status conditions (PostgreSQL).
-- Mirrors ../sqlite/20261126000001_projects_and_runs.up.sql column for column.
CREATE TABLE projects (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid UUID NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags JSONB NOT NULL DEFAULT '[]',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT projects_uuid_key UNIQUE (uuid),
    CONSTRAINT projects_owner_name_key UNIQUE (owner, name)
);

CREATE TABLE runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid UUID NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT,
    description TEXT NOT NULL DEFAULT '',
    tags JSONB NOT NULL DEFAULT '[]',
    kind TEXT,
    status TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    inputs JSONB NOT NULL DEFAULT '{}',
    outputs JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    wait_time DOUBLE PRECISION,
    duration DOUBLE PRECISION,
    CONSTRAINT runs_uuid_key UNIQUE (uuid),
    CONSTRAINT runs_status_check CHECK (status IN (
        'created', 'resuming', 'on_schedule', 'compiled', 'queued', 'scheduled',
        'starting', 'running', 'processing', 'stopping', 'failed', 'stopped',
        'succeeded', 'skipped', 'warning', 'unschedulable', 'upstream_failed',
        'retrying', 'unknown'))
);
CREATE INDEX runs_project_created_idx ON runs (project_id, created_at);
CREATE INDEX runs_project_status_idx ON runs (project_id, status);

CREATE TABLE run_conditions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX run_conditions_run_idx ON run_conditions (run_id, id);
