-- Witnesses: the checkpoints that gathered the witnesses' cosignatures
-- (the signed note with them), and the certificates waiting for one: a
-- certificate is issued on a witnessed checkpoint only, once one covers
-- the log as it was when the request changed (log_size).

-- +goose Up
CREATE TABLE IF NOT EXISTS witnessed_checkpoints (
	size      INTEGER PRIMARY KEY,
	note      BLOB NOT NULL,
	made_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_certificates (
	request_id TEXT PRIMARY KEY REFERENCES requests (id),
	log_size   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_certificates_size ON pending_certificates (log_size);

-- +goose Down
DROP TABLE pending_certificates;
DROP TABLE witnessed_checkpoints;
