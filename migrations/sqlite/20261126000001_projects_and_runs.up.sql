-- Projects, runs and their append-only status conditions (SQLite).
-- Mirrors ../postgres/20261126000001_projects_and_runs.up.sql column for column.
CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    uuid BLOB NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT projects_uuid_key UNIQUE (uuid),
    CONSTRAINT projects_owner_name_key UNIQUE (owner, name)
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    uuid BLOB NOT NULL,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name TEXT,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    kind TEXT,
    status TEXT NOT NULL,
    content TEXT NOT NULL DEFAULT '',
    inputs TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    wait_time REAL,
    duration REAL,
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
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX run_conditions_run_idx ON run_conditions (run_id, id);
