-- Extensions (Art. 12(3)), deferred erasures, notices to data subjects,
-- per-tenant deadline policies, and request counts kept by triggers so that
-- the metrics do not count the whole table on every scrape.

-- +goose Up
-- The deadline policy the request's deadline was counted by (JSON of
-- deadline.Spec; NULL: UTC, no roll), kept so that a later change of the
-- tenants file moves no existing deadline.
ALTER TABLE requests ADD COLUMN deadline_policy TEXT;
-- Set when the deadline was extended: the deadline before, when, and why.
ALTER TABLE requests ADD COLUMN original_deadline INTEGER;
ALTER TABLE requests ADD COLUMN extended_at INTEGER;
ALTER TABLE requests ADD COLUMN extension_reason TEXT;
-- When the request was first answered in full (fulfilled, or partially
-- retained until a deferred erasure finishes it).
ALTER TABLE requests ADD COLUMN answered_at INTEGER;

-- The attempts a task had before its current round (a deferred erasure's
-- follow-up is a new round, with attempts of its own; the count goes on so
-- that each attempt's message id stays new).
ALTER TABLE tasks ADD COLUMN round_start INTEGER NOT NULL DEFAULT 0;

-- Deferred tasks wait for their retain-until date: years, so they get an
-- index of their own, and tasks_due stays small (what waits for an answer).
CREATE INDEX tasks_deferred ON tasks (retain_until) WHERE state = 'deferred';

-- The notification outbox: a notice to a data subject, delivered on the
-- bus and, where configured, to a webhook; each delivery is logged.
CREATE TABLE notices (
	id              TEXT PRIMARY KEY,
	request_id      TEXT NOT NULL REFERENCES requests (id),
	kind            TEXT NOT NULL,
	-- The notice (it names the person); NULL once delivered everywhere.
	payload         BLOB,
	created_at      INTEGER NOT NULL,
	bus_at          INTEGER,
	webhook_at      INTEGER,
	attempts        INTEGER NOT NULL DEFAULT 0,
	-- When delivery is tried next; NULL once there is nothing to deliver.
	next_attempt_at INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	claimed_by      TEXT,
	claimed_until   INTEGER
);
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX notices_request ON notices (request_id);

CREATE TABLE request_counts (
	state TEXT NOT NULL,
	type  TEXT NOT NULL,
	n     INTEGER NOT NULL,
	PRIMARY KEY (state, type)
);
INSERT INTO request_counts (state, type, n) SELECT state, type, count(*) FROM requests GROUP BY state, type;
-- +goose StatementBegin
CREATE TRIGGER requests_counted_insert AFTER INSERT ON requests BEGIN
	INSERT INTO request_counts (state, type, n) VALUES (NEW.state, NEW.type, 1)
		ON CONFLICT (state, type) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER requests_counted_update AFTER UPDATE OF state ON requests WHEN OLD.state <> NEW.state BEGIN
	UPDATE request_counts SET n = n - 1 WHERE state = OLD.state AND type = OLD.type;
	INSERT INTO request_counts (state, type, n) VALUES (NEW.state, NEW.type, 1)
		ON CONFLICT (state, type) DO UPDATE SET n = n + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER requests_counted_update;
DROP TRIGGER requests_counted_insert;
DROP TABLE request_counts;
DROP TABLE notices;
DROP INDEX tasks_deferred;
ALTER TABLE tasks DROP COLUMN round_start;
ALTER TABLE requests DROP COLUMN answered_at;
ALTER TABLE requests DROP COLUMN extension_reason;
ALTER TABLE requests DROP COLUMN extended_at;
ALTER TABLE requests DROP COLUMN original_deadline;
ALTER TABLE requests DROP COLUMN deadline_policy;
