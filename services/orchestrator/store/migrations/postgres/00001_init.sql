-- Times are milliseconds since the Unix epoch (bigint), as in the SQLite
-- schema: both engines share one SQL layer and return identical values.
-- Read one as a date with to_timestamp(deadline / 1000.0).

-- +goose Up
CREATE TABLE requests (
	id              text PRIMARY KEY,
	tenant          text NOT NULL,
	type            text NOT NULL,
	state           text NOT NULL,
	subject_email   text,
	subject_user_id text,
	subject_hash    text NOT NULL,
	source          text NOT NULL,
	source_ref      text UNIQUE,
	received_at     bigint NOT NULL,
	deadline        bigint NOT NULL,
	created_at      bigint NOT NULL,
	updated_at      bigint NOT NULL,
	completed_at    bigint
);
-- Open requests by nearest deadline, the overdue count, and listing by
-- state: index ranges, whatever the number of ended requests.
CREATE INDEX requests_state_deadline ON requests (state, deadline, id);
CREATE INDEX requests_deadline ON requests (deadline, id);

CREATE TABLE tasks (
	id              text PRIMARY KEY,
	request_id      text NOT NULL REFERENCES requests (id),
	system          text NOT NULL,
	state           text NOT NULL,
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at bigint,
	outcome         text NOT NULL DEFAULT '',
	answered_at     bigint,
	detail          text NOT NULL DEFAULT '',
	legal_basis     text NOT NULL DEFAULT '',
	retain_until    bigint,
	counts          jsonb NOT NULL DEFAULT '{}',
	remaining       bigint NOT NULL DEFAULT 0,
	export_sha256   bytea,
	export_data     bytea,
	receipt         bytea
);
CREATE INDEX tasks_request ON tasks (request_id, system);
-- Only tasks waiting for an answer or a retry are in it: it stays small.
CREATE INDEX tasks_due ON tasks (next_attempt_at) WHERE state IN ('published', 'retrying');

CREATE TABLE outbox (
	seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic         text NOT NULL,
	msg_id        text NOT NULL,
	ce_type       text NOT NULL,
	msg_key       text NOT NULL,
	payload       bytea NOT NULL,
	created_at    bigint NOT NULL,
	published_at  bigint,
	task_id       text,
	wait_ms       bigint NOT NULL DEFAULT 0,
	claimed_by    text,
	claimed_until bigint
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_key ON outbox (msg_key);

CREATE TABLE log_entries (
	idx        bigint PRIMARY KEY,
	request_id text NOT NULL,
	data       bytea NOT NULL
);
CREATE INDEX log_entries_request ON log_entries (request_id, idx);
CREATE TABLE log_hashes (
	idx  bigint PRIMARY KEY,
	hash bytea NOT NULL
);
-- The log's size; AppendLog locks this row, so appends from every replica
-- are serialised and the indexes stay dense.
CREATE TABLE log_head (
	id   integer PRIMARY KEY CHECK (id = 1),
	size bigint NOT NULL
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE TABLE certificates (
	request_id text PRIMARY KEY REFERENCES requests (id),
	data       bytea NOT NULL,
	issued_at  bigint NOT NULL
);

-- +goose Down
DROP TABLE certificates;
DROP TABLE log_head;
DROP TABLE log_hashes;
DROP TABLE log_entries;
DROP TABLE outbox;
DROP TABLE tasks;
DROP TABLE requests;
