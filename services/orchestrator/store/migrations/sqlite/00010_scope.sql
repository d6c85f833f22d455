-- What a request covers beyond a person, as JSON: for a retention run
-- (type sweep) its policy, clock, cut-off, dry run, and each system's data
-- categories; for a consent withdrawal or an objection, the purposes and
-- each system's data categories.

-- +goose Up
ALTER TABLE requests ADD COLUMN scope text;

-- +goose Down
ALTER TABLE requests DROP COLUMN scope;
