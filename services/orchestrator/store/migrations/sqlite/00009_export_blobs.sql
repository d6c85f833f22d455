-- Exports moved from the store to the blob store: tasks.export_data now
-- holds the key of a task's export blobs, sealed to the orchestrator, and
-- the single-use download links made for data subjects are kept (by the
-- SHA-256 of their secret only).

-- +goose Up
-- An export kept inline by an earlier version cannot be served as a
-- bundle: it is dropped, as at expiry, and its digest stays.
UPDATE tasks SET export_data = NULL WHERE export_data IS NOT NULL;
CREATE TABLE export_links (
	hash       BLOB PRIMARY KEY,
	request_id text NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER
);
CREATE INDEX export_links_request ON export_links (request_id);

-- +goose Down
DROP TABLE export_links;
