-- The queue a run asked for (`queue:` in its spec); NULL is `default`.
-- Stored so the scheduler does not recompile every active run's spec.
ALTER TABLE runs ADD COLUMN queue TEXT;
