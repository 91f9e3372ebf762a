-- +goose Up
-- The attempt journal: set, durably, for the recipients an attempt hands to
-- the relay before their data goes out, and cleared when the attempt's
-- outcome is written. A recipient still marked when a later attempt starts
-- was in an attempt that died without an answer: it may have the message.
ALTER TABLE message_recipients ADD COLUMN in_flight_since timestamptz;

-- Fair share between tenants (weight, the tenant's plan) and an optional
-- maximum send rate in messages per second (0: none). send_tat is the
-- theoretical arrival time of the rate limiter (GCRA), shared by every worker.
ALTER TABLE subscriptions ADD COLUMN delivery_weight real NOT NULL DEFAULT 1 CHECK (delivery_weight > 0 AND delivery_weight <= 1000);
ALTER TABLE subscriptions ADD COLUMN max_send_rate real NOT NULL DEFAULT 0 CHECK (max_send_rate >= 0);
ALTER TABLE subscriptions ADD COLUMN send_tat timestamptz;

-- A send slot a rate-limited message reserved before it was put back to
-- wait; the woken job uses it instead of reserving another.
ALTER TABLE messages ADD COLUMN send_slot timestamptz;

-- Each tenant's fair-queuing clock, shared by the API processes that tag new
-- delivery jobs. Unlogged: after a crash every tenant simply starts level.
CREATE UNLOGGED TABLE delivery_clocks (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    virtual_time    timestamptz NOT NULL
);
ALTER TABLE delivery_clocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE delivery_clocks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON delivery_clocks
    USING (subscription_id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator());

-- The reconciler looks for unsettled messages; keep that scan small.
CREATE INDEX messages_unsettled_idx ON messages (updated_at) WHERE state IN ('queued', 'sending');

-- +goose Down
DROP INDEX messages_unsettled_idx;
DROP TABLE delivery_clocks;
ALTER TABLE messages DROP COLUMN send_slot;
ALTER TABLE subscriptions DROP COLUMN send_tat;
ALTER TABLE subscriptions DROP COLUMN max_send_rate;
ALTER TABLE subscriptions DROP COLUMN delivery_weight;
ALTER TABLE message_recipients DROP COLUMN in_flight_since;
