-- Exports still held (not collected, not expired): the expiry looks at
-- these rows only.

-- +goose Up
CREATE INDEX tasks_export_held ON tasks (request_id) WHERE export_data IS NOT NULL;

-- +goose Down
DROP INDEX tasks_export_held;
