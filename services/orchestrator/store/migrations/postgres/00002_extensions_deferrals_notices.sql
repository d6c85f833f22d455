-- Extensions (Art. 12(3)), deferred erasures, notices to data subjects,
-- per-tenant deadline policies, and request counts kept by a trigger so
-- that the metrics do not count the whole table on every scrape.

-- +goose Up
-- The deadline policy the request's deadline was counted by (JSON of
-- deadline.Spec; NULL: UTC, no roll), kept so that a later change of the
-- tenants file moves no existing deadline.
ALTER TABLE requests ADD COLUMN deadline_policy text;
-- Set when the deadline was extended: the deadline before, when, and why.
ALTER TABLE requests ADD COLUMN original_deadline bigint;
ALTER TABLE requests ADD COLUMN extended_at bigint;
ALTER TABLE requests ADD COLUMN extension_reason text;
-- When the request was first answered in full (fulfilled, or partially
-- retained until a deferred erasure finishes it).
ALTER TABLE requests ADD COLUMN answered_at bigint;

-- The attempts a task had before its current round (a deferred erasure's
-- follow-up is a new round, with attempts of its own; the count goes on so
-- that each attempt's message id stays new).
ALTER TABLE tasks ADD COLUMN round_start integer NOT NULL DEFAULT 0;

-- Deferred tasks wait for their retain-until date: years, so they get an
-- index of their own, and tasks_due stays small (what waits for an answer).
CREATE INDEX tasks_deferred ON tasks (retain_until) WHERE state = 'deferred';

-- The notification outbox: a notice to a data subject, delivered on the
-- bus and, where configured, to a webhook; each delivery is logged.
CREATE TABLE notices (
	id              text PRIMARY KEY,
	request_id      text NOT NULL REFERENCES requests (id),
	kind            text NOT NULL,
	-- The notice (it names the person); NULL once delivered everywhere.
	payload         bytea,
	created_at      bigint NOT NULL,
	bus_at          bigint,
	webhook_at      bigint,
	attempts        integer NOT NULL DEFAULT 0,
	-- When delivery is tried next; NULL once there is nothing to deliver.
	next_attempt_at bigint,
	last_error      text NOT NULL DEFAULT '',
	claimed_by      text,
	claimed_until   bigint
);
CREATE INDEX notices_due ON notices (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX notices_request ON notices (request_id);

-- Requests by state and type. The trigger's row updates serialise the
-- commits that change the same (state, type) count, as log_head already
-- serialises every transaction that appends to the log.
CREATE TABLE request_counts (
	state text NOT NULL,
	type  text NOT NULL,
	n     bigint NOT NULL,
	PRIMARY KEY (state, type)
);
INSERT INTO request_counts (state, type, n) SELECT state, type, count(*) FROM requests GROUP BY state, type;
-- +goose StatementBegin
CREATE FUNCTION requests_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		IF OLD.state = NEW.state THEN
			RETURN NULL;
		END IF;
		UPDATE request_counts SET n = n - 1 WHERE state = OLD.state AND type = OLD.type;
	END IF;
	INSERT INTO request_counts (state, type, n) VALUES (NEW.state, NEW.type, 1)
		ON CONFLICT (state, type) DO UPDATE SET n = request_counts.n + 1;
	RETURN NULL;
END;
$$;
-- +goose StatementEnd
-- Deferred to the commit: the count rows are then locked last, after the
-- log's head that most transactions hold, and never before it (a request's
-- state may change before or after its transaction appends to the log), so
-- two transactions never wait for each other in a cycle.
CREATE CONSTRAINT TRIGGER requests_counted AFTER INSERT OR UPDATE OF state ON requests
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION requests_counted();

-- +goose Down
DROP TRIGGER requests_counted ON requests;
DROP FUNCTION requests_counted();
DROP TABLE request_counts;
DROP TABLE notices;
DROP INDEX tasks_deferred;
ALTER TABLE tasks DROP COLUMN round_start;
ALTER TABLE requests DROP COLUMN answered_at;
ALTER TABLE requests DROP COLUMN extension_reason;
ALTER TABLE requests DROP COLUMN extended_at;
ALTER TABLE requests DROP COLUMN original_deadline;
ALTER TABLE requests DROP COLUMN deadline_policy;
