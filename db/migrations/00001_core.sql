-- +goose Up
-- Tenants. Every tenant-owned table below carries subscription_id and is
-- keyed by it first, so every query is scoped by the tenant and the key can
-- later shard the data.
CREATE TABLE subscriptions (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (name <> ''),
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Domains a tenant may send from. Only verified ones authorize a sender.
CREATE TABLE sender_domains (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    domain          text NOT NULL CHECK (domain = lower(domain) AND domain <> ''),
    verified_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, domain)
);

-- Accounts are a tenant's users: senders, and mailboxes for internal delivery.
CREATE TABLE accounts (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    email           text NOT NULL CHECK (email <> ''),
    display_name    text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, id)
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (subscription_id, lower(email));

CREATE TABLE messages (
    subscription_id     uuid NOT NULL REFERENCES subscriptions (id),
    id                  uuid NOT NULL,
    sender_account_id   uuid,
    sender_email        text NOT NULL,
    sender_display_name text NOT NULL DEFAULT '',
    subject             text NOT NULL DEFAULT '',
    body                text NOT NULL DEFAULT '',
    importance          smallint NOT NULL DEFAULT 1 CHECK (importance BETWEEN 0 AND 2),
    message_id          text NOT NULL,
    in_reply_to         text NOT NULL DEFAULT '',
    references_header   text NOT NULL DEFAULT '',
    parent_id           uuid,
    conversation_id     uuid NOT NULL,
    state               text NOT NULL CHECK (state IN ('draft', 'queued', 'sending', 'sent', 'partially_sent', 'failed', 'cancelled')),
    -- version is the optimistic-concurrency token behind the wire's ts.
    version             bigint NOT NULL DEFAULT 1,
    last_error          text NOT NULL DEFAULT '',
    created_date        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    queued_at           timestamptz,
    finished_at         timestamptz,
    PRIMARY KEY (subscription_id, id)
);
CREATE INDEX messages_recent_idx ON messages (subscription_id, created_date DESC, id DESC);
CREATE INDEX messages_conversation_idx ON messages (subscription_id, conversation_id);

CREATE TABLE message_recipients (
    subscription_id uuid NOT NULL,
    message_id      uuid NOT NULL,
    position        int NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('to', 'cc', 'bcc')),
    display_name    text NOT NULL DEFAULT '',
    email           text NOT NULL,
    account_id      uuid,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'deferred', 'bounced', 'failed', 'suppressed')),
    attempts        int NOT NULL DEFAULT 0,
    last_code       int NOT NULL DEFAULT 0,
    last_reply      text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, message_id, position),
    FOREIGN KEY (subscription_id, message_id) REFERENCES messages (subscription_id, id) ON DELETE CASCADE
);

-- The timeline of each message. Events outlive deleted messages, so no foreign key.
CREATE TABLE message_events (
    id              bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL,
    message_id      uuid NOT NULL,
    type            text NOT NULL,
    recipient       text NOT NULL DEFAULT '',
    smtp_code       int NOT NULL DEFAULT 0,
    detail          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_events_message_idx ON message_events (subscription_id, message_id, id);
CREATE INDEX message_events_feed_idx ON message_events (subscription_id, id);

-- +goose Down
DROP TABLE message_events;
DROP TABLE message_recipients;
DROP TABLE messages;
DROP TABLE accounts;
DROP TABLE sender_domains;
DROP TABLE subscriptions;
