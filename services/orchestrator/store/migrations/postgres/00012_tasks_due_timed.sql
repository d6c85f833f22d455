-- tasks_due holds only the tasks with a time to be retried at: a task just
-- published has none until the relay marks it (MarkPublished). With those in
-- it, a burst of new tasks made the planner take this index to find the
-- tasks to mark (its statistics still said few wait unmarked) and join each
-- of the thousands found with the outbox: ~100 ms a call instead of a few
-- key look-ups. DueTasks' "next_attempt_at <= ?" implies the new condition.

-- +goose Up
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying') AND next_attempt_at IS NOT NULL;

-- +goose Down
DROP INDEX tasks_due;
CREATE INDEX tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying');
