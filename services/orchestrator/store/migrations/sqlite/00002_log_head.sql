-- The log's size in one row, read in O(1) instead of counting the entries,
-- and the row PostgreSQL locks to serialise appends (SQLite has one writer
-- anyway). Seeded from the entries an existing database already holds.

-- +goose Up
CREATE TABLE log_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	size INTEGER NOT NULL
);
INSERT INTO log_head (id, size) SELECT 1, count(*) FROM log_entries;

-- +goose Down
DROP TABLE log_head;
