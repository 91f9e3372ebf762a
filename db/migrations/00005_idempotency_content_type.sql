-- +goose Up
-- A replayed answer keeps the format (JSON or XML) of the original.
ALTER TABLE idempotency_keys ADD COLUMN content_type text NOT NULL DEFAULT 'application/json; charset=utf-8';

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN content_type;
