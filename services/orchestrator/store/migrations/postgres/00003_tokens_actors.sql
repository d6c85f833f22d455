-- API tokens, who submitted each request, the notes of decisions on it,
-- and an index for the expiry of requests never verified.

-- +goose Up
-- Opaque bearer tokens: only the SHA-256 of each is kept, never the token.
CREATE TABLE tokens (
	id           text PRIMARY KEY,
	hash         bytea NOT NULL UNIQUE,
	name         text NOT NULL,
	-- '*' for an admin: every tenant.
	tenant       text NOT NULL,
	role         text NOT NULL,
	created_at   bigint NOT NULL,
	last_used_at bigint,
	expires_at   bigint,
	revoked_at   bigint
);
-- Who submitted the request (a token id or an OIDC subject): an intake
-- token reads the requests it submitted, and no others.
ALTER TABLE requests ADD COLUMN submitted_by text;
-- The notes of the identity check and of a refusal, shown in the
-- certificate; the log keeps their hashes. They hold no personal data.
ALTER TABLE requests ADD COLUMN verification_note text;
ALTER TABLE requests ADD COLUMN denial_note text;
-- Requests waiting for their identity check, by receipt, for expiry.
CREATE INDEX requests_unverified ON requests (received_at) WHERE state = 'pending_verification';

-- +goose Down
DROP INDEX requests_unverified;
ALTER TABLE requests DROP COLUMN denial_note;
ALTER TABLE requests DROP COLUMN verification_note;
ALTER TABLE requests DROP COLUMN submitted_by;
DROP TABLE tokens;
