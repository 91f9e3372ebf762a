-- +goose Up
-- Each tenant's API rate limiter, shared by every API process: the
-- theoretical arrival time of the GCRA (the moment the tenant's bucket is
-- full again) and whether the last request was let through. Unlogged, so a
-- request costs no WAL flush; after a crash every tenant starts with a full
-- burst.
CREATE UNLOGGED TABLE api_rate_limits (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    tat             timestamptz NOT NULL,
    granted         boolean NOT NULL
);
ALTER TABLE api_rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_rate_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_rate_limits
    USING (subscription_id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator());

-- +goose Down
DROP TABLE api_rate_limits;
