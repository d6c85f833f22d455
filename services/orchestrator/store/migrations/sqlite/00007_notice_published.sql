-- A notice counts as delivered on the bus only once a mailer acknowledged
-- it (bus_at); bus_published_at is when it was handed to the bus, so that
-- it is published again if no acknowledgement comes.

-- +goose Up
ALTER TABLE notices ADD COLUMN bus_published_at INTEGER;

-- +goose Down
ALTER TABLE notices DROP COLUMN bus_published_at;
