-- The schema as it was before versioned migrations: IF NOT EXISTS, so that a
-- database created by an earlier release adopts version 1 as it is.

-- +goose Up
CREATE TABLE IF NOT EXISTS requests (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	type            TEXT NOT NULL,
	state           TEXT NOT NULL,
	subject_email   TEXT,
	subject_user_id TEXT,
	subject_hash    TEXT NOT NULL,
	source          TEXT NOT NULL,
	source_ref      TEXT UNIQUE,
	received_at     INTEGER NOT NULL,
	deadline        INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	completed_at    INTEGER
);
CREATE INDEX IF NOT EXISTS requests_state_deadline ON requests (state, deadline, id);
CREATE INDEX IF NOT EXISTS requests_deadline ON requests (deadline, id);
CREATE TABLE IF NOT EXISTS tasks (
	id              TEXT PRIMARY KEY,
	request_id      TEXT NOT NULL REFERENCES requests (id),
	system          TEXT NOT NULL,
	state           TEXT NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER,
	outcome         TEXT NOT NULL DEFAULT '',
	answered_at     INTEGER,
	detail          TEXT NOT NULL DEFAULT '',
	legal_basis     TEXT NOT NULL DEFAULT '',
	retain_until    INTEGER,
	counts          TEXT NOT NULL DEFAULT '{}',
	remaining       INTEGER NOT NULL DEFAULT 0,
	export_sha256   BLOB,
	export_data     BLOB,
	receipt         BLOB
);
CREATE INDEX IF NOT EXISTS tasks_request ON tasks (request_id);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying');
CREATE TABLE IF NOT EXISTS outbox (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	topic        TEXT NOT NULL,
	msg_id       TEXT NOT NULL,
	ce_type      TEXT NOT NULL,
	msg_key      TEXT NOT NULL,
	payload      BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	published_at INTEGER,
	task_id      TEXT,
	wait_ms      INTEGER NOT NULL DEFAULT 0,
	claimed_by    TEXT,
	claimed_until INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_key ON outbox (msg_key);
CREATE TABLE IF NOT EXISTS log_entries (
	idx        INTEGER PRIMARY KEY,
	request_id TEXT NOT NULL,
	data       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_request ON log_entries (request_id, idx);
CREATE TABLE IF NOT EXISTS log_hashes (
	idx  INTEGER PRIMARY KEY,
	hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
	request_id TEXT PRIMARY KEY REFERENCES requests (id),
	data       BLOB NOT NULL,
	issued_at  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE certificates;
DROP TABLE log_hashes;
DROP TABLE log_entries;
DROP TABLE outbox;
DROP TABLE tasks;
DROP TABLE requests;
