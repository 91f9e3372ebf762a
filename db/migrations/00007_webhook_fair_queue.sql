-- +goose Up
-- Each tenant's place in the webhook queue. Webhook jobs are tagged with a
-- virtual time (far in the past, so they are due at once) that River fetches
-- in order; last_tag is the tag of the tenant's latest job, so its next jobs
-- queue behind its own backlog and not behind other tenants' (see
-- adapters/postgres/webhook_queue.go).
CREATE TABLE webhook_queue_clocks (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    last_tag        timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE webhook_queue_clocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_queue_clocks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_queue_clocks
    USING (subscription_id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator());

-- +goose Down
DROP TABLE webhook_queue_clocks;
