-- When a task's current attempt was published, and the outbox seq of its
-- message: its place in its system's queue, which tells a task waiting
-- behind a backlog from a task lost (the retry scan postpones the first).

-- +goose Up
ALTER TABLE tasks ADD COLUMN published_at INTEGER;
ALTER TABLE tasks ADD COLUMN published_seq INTEGER;

-- +goose Down
ALTER TABLE tasks DROP COLUMN published_seq;
ALTER TABLE tasks DROP COLUMN published_at;
