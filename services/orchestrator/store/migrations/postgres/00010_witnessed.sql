-- Witnesses: the checkpoints that gathered the witnesses' cosignatures
-- (the signed note with them), and the certificates waiting for one: a
-- certificate is issued on a witnessed checkpoint only, once one covers
-- the log as it was when the request changed (log_size).

-- +goose Up
CREATE TABLE witnessed_checkpoints (
	size    bigint PRIMARY KEY,
	note    bytea NOT NULL,
	made_at bigint NOT NULL
);
CREATE TABLE pending_certificates (
	request_id text PRIMARY KEY REFERENCES requests (id),
	log_size   bigint NOT NULL
);
CREATE INDEX pending_certificates_size ON pending_certificates (log_size);

-- +goose Down
DROP TABLE pending_certificates;
DROP TABLE witnessed_checkpoints;
