-- API tokens, who submitted each request, the notes of decisions on it,
-- and an index for the expiry of requests never verified.

-- +goose Up
-- Opaque bearer tokens: only the SHA-256 of each is kept, never the token.
CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	hash         BLOB NOT NULL UNIQUE,
	name         TEXT NOT NULL,
	-- '*' for an admin: every tenant.
	tenant       TEXT NOT NULL,
	role         TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER,
	expires_at   INTEGER,
	revoked_at   INTEGER
);
-- Who submitted the request (a token id or an OIDC subject): an intake
-- token reads the requests it submitted, and no others.
ALTER TABLE requests ADD COLUMN submitted_by TEXT;
-- The notes of the identity check and of a refusal, shown in the
-- certificate; the log keeps their hashes. They hold no personal data.
ALTER TABLE requests ADD COLUMN verification_note TEXT;
ALTER TABLE requests ADD COLUMN denial_note TEXT;
-- Requests waiting for their identity check, by receipt, for expiry.
CREATE INDEX requests_unverified ON requests (received_at) WHERE state = 'pending_verification';

-- +goose Down
DROP INDEX requests_unverified;
ALTER TABLE requests DROP COLUMN denial_note;
ALTER TABLE requests DROP COLUMN verification_note;
ALTER TABLE requests DROP COLUMN submitted_by;
DROP TABLE tokens;
