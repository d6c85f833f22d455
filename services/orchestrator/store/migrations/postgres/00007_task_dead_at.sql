-- When a task ran out of attempts (dead_letter), so that dead letters can
-- be listed and replayed by time; the index holds the dead letters only.

-- +goose Up
ALTER TABLE tasks ADD COLUMN dead_at bigint;
CREATE INDEX tasks_dead ON tasks (dead_at) WHERE state = 'dead_letter';

-- +goose Down
DROP INDEX tasks_dead;
ALTER TABLE tasks DROP COLUMN dead_at;
