-- +goose Up
-- Sandbox tenants: everything is accepted, stored and evented; nothing leaves.
ALTER TABLE subscriptions ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

-- Scheduled send, and the delivery job so a cancel can remove it atomically.
ALTER TABLE messages ADD COLUMN send_at timestamptz;
ALTER TABLE messages ADD COLUMN job_id bigint;

-- Set when a connection was lost after DATA: the recipient may have the message already.
ALTER TABLE message_recipients ADD COLUMN possible_duplicate boolean NOT NULL DEFAULT false;

-- The event feed. Events not about a message (webhook disabled, suppression
-- added) have no message. xact_id orders the feed by commit horizon: a
-- reader only sees events of transactions older than every transaction still
-- running, so no event can appear behind a consumer's cursor later.
ALTER TABLE message_events ALTER COLUMN message_id DROP NOT NULL;
ALTER TABLE message_events ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX message_events_xact_idx ON message_events (subscription_id, xact_id, id);

CREATE TABLE suppressions (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    email           text NOT NULL CHECK (email = lower(email)),
    reason          text NOT NULL DEFAULT '',
    source          text NOT NULL CHECK (source IN ('bounce', 'manual')),
    smtp_code       int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, email)
);

CREATE TABLE webhooks (
    subscription_id          uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    id                       uuid NOT NULL,
    url                      text NOT NULL,
    secret                   bytea NOT NULL,
    -- During a rotation the previous secret also signs, until it expires.
    previous_secret          bytea,
    previous_secret_until    timestamptz,
    event_types              text[],
    status                   text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason          text NOT NULL DEFAULT '',
    consecutive_failures     int NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, id)
);

-- DKIM signing keys, one per sender domain of a tenant.
CREATE TABLE dkim_keys (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    domain          text NOT NULL CHECK (domain = lower(domain)),
    selector        text NOT NULL,
    algorithm       text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    private_key     bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, domain)
);

CREATE TABLE idempotency_keys (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    status          int NOT NULL DEFAULT 0,
    message_ids     uuid[] NOT NULL DEFAULT '{}',
    response        bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['suppressions', 'webhooks', 'idempotency_keys', 'dkim_keys']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I
                            USING (subscription_id = mailgate_tenant() OR mailgate_operator())
                            WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator())', t);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE dkim_keys;
DROP TABLE webhooks;
DROP TABLE suppressions;
DROP INDEX message_events_xact_idx;
ALTER TABLE message_events DROP COLUMN xact_id;
ALTER TABLE message_recipients DROP COLUMN possible_duplicate;
ALTER TABLE messages DROP COLUMN job_id;
ALTER TABLE messages DROP COLUMN send_at;
ALTER TABLE subscriptions DROP COLUMN sandbox;
