-- +goose Up
-- Uploaded files. Content lives in the row (size-capped by the API) so one
-- database backup holds everything a message needs.
CREATE TABLE attachments (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    filename        text NOT NULL,
    content_type    text NOT NULL,
    size_bytes      bigint NOT NULL CHECK (size_bytes >= 0),
    sha256          bytea NOT NULL,
    content         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, id)
);
CREATE INDEX attachments_created_idx ON attachments (created_at);

-- Which attachments a message carries, in order. The foreign key keeps a
-- referenced attachment from being purged.
CREATE TABLE message_attachments (
    subscription_id uuid NOT NULL,
    message_id      uuid NOT NULL,
    position        int NOT NULL,
    attachment_id   uuid NOT NULL,
    PRIMARY KEY (subscription_id, message_id, position),
    FOREIGN KEY (subscription_id, message_id) REFERENCES messages (subscription_id, id) ON DELETE CASCADE,
    FOREIGN KEY (subscription_id, attachment_id) REFERENCES attachments (subscription_id, id)
);
CREATE INDEX message_attachments_attachment_idx ON message_attachments (subscription_id, attachment_id);

-- Internal delivery: a message in an account's inbox.
CREATE TABLE mailbox_entries (
    subscription_id uuid NOT NULL,
    account_id      uuid NOT NULL,
    message_id      uuid NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, account_id, message_id),
    FOREIGN KEY (subscription_id, message_id) REFERENCES messages (subscription_id, id) ON DELETE CASCADE,
    FOREIGN KEY (subscription_id, account_id) REFERENCES accounts (subscription_id, id) ON DELETE CASCADE
);
CREATE INDEX mailbox_entries_inbox_idx ON mailbox_entries (subscription_id, account_id, received_at DESC);

-- Message ids are unique across tenants, so an id another tenant uses is
-- "not found" for everyone else rather than a second message.
CREATE UNIQUE INDEX messages_id_key ON messages (id);

CREATE INDEX messages_state_idx ON messages (subscription_id, state, created_date DESC, id DESC);
CREATE INDEX messages_sender_idx ON messages (subscription_id, sender_account_id, created_date DESC);

-- +goose Down
DROP INDEX messages_sender_idx;
DROP INDEX messages_id_key;
DROP INDEX messages_state_idx;
DROP TABLE mailbox_entries;
DROP TABLE message_attachments;
DROP TABLE attachments;
