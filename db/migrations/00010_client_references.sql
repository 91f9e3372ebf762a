-- +goose Up
-- A client's own message_id and references, kept as given when they are not
-- what goes on the wire (the seed contract has them as free-form strings);
-- message_id and references_header stay the valid RFC 5322 values sent.
ALTER TABLE messages ADD COLUMN client_message_id text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN client_references text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE messages DROP COLUMN client_references;
ALTER TABLE messages DROP COLUMN client_message_id;
