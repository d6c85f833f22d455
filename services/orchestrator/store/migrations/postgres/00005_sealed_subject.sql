-- The person's identifiers are kept sealed to the orchestrator's own key:
-- the database file, its WAL and its backups name no one. subject_email
-- and subject_user_id stay for the rows an older version wrote in clear;
-- the orchestrator seals those at their request's next change.

-- +goose Up
ALTER TABLE requests ADD COLUMN sealed_subject bytea;

-- +goose Down
ALTER TABLE requests DROP COLUMN sealed_subject;
