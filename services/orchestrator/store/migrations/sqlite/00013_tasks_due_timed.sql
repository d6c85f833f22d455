-- tasks_due holds only the tasks with a time to be retried at, as on
-- PostgreSQL (its 00012, which says why): the two schemas stay alike, and
-- the index no longer carries the tasks just published.

-- +goose Up
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying') AND next_attempt_at IS NOT NULL;

-- +goose Down
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying');
