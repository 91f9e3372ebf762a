-- +goose Up
-- Inbound mail: bounces, complaints and replies the gateway receives on its
-- own SMTP listener (adapters/inbound).

-- A tenant's own return-path domain (a CNAME to the bounce domain), so SPF
-- aligns with its From domain; and whether its mail carries a Reply-To that
-- routes replies to the sender account's inbox.
ALTER TABLE subscriptions ADD COLUMN return_path_domain text
    CHECK (return_path_domain = lower(return_path_domain) AND return_path_domain <> '');
CREATE UNIQUE INDEX subscriptions_return_path_domain_key ON subscriptions (return_path_domain);
ALTER TABLE subscriptions ADD COLUMN reply_routing boolean NOT NULL DEFAULT false;

-- A complaint (RFC 5965 feedback report) suppresses too.
ALTER TABLE suppressions DROP CONSTRAINT suppressions_source_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_source_check CHECK (source IN ('bounce', 'manual', 'complaint'));

-- A reply received into an account's inbox is a message of its own.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('draft', 'queued', 'sending', 'sent', 'partially_sent', 'failed', 'cancelled', 'received'));
-- The plain-text body of a received message beside its HTML one (body), and
-- the DKIM verification result of its signatures.
ALTER TABLE messages ADD COLUMN text_body text NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN dkim_result text NOT NULL DEFAULT '';
-- Reports name the original by its Message-ID header; replies thread by it.
CREATE INDEX messages_message_id_idx ON messages (message_id);

-- Everything the listener accepted, written before it answers 250, then
-- processed by a process_inbound job. Rows that matched nothing (unknown or
-- forged tokens, unparsable reports) stay for the operator with the reason.
CREATE TABLE inbound_messages (
    id              uuid PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    remote_addr     text NOT NULL,
    helo            text NOT NULL DEFAULT '',
    mail_from       text NOT NULL DEFAULT '',
    rcpt_to         text[] NOT NULL,
    size_bytes      int NOT NULL CHECK (size_bytes >= 0),
    raw             bytea NOT NULL,
    status          text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'processed', 'unmatched')),
    kind            text NOT NULL DEFAULT '',
    subscription_id uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    message_id      uuid,
    detail          text NOT NULL DEFAULT '',
    processed_at    timestamptz
);
CREATE INDEX inbound_messages_status_idx ON inbound_messages (status, received_at);

ALTER TABLE inbound_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbound_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inbound_messages
    USING (subscription_id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator());

-- +goose Down
DROP TABLE inbound_messages;
DROP INDEX messages_message_id_idx;
ALTER TABLE messages DROP COLUMN dkim_result;
ALTER TABLE messages DROP COLUMN text_body;
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('draft', 'queued', 'sending', 'sent', 'partially_sent', 'failed', 'cancelled'));
ALTER TABLE suppressions DROP CONSTRAINT suppressions_source_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_source_check CHECK (source IN ('bounce', 'manual'));
ALTER TABLE subscriptions DROP COLUMN reply_routing;
DROP INDEX subscriptions_return_path_domain_key;
ALTER TABLE subscriptions DROP COLUMN return_path_domain;
