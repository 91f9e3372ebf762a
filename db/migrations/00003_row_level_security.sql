-- +goose Up
-- Row-level security: every tenant-owned table only shows and accepts the
-- rows of the tenant set for the current transaction with
--   set_config('mailgate.subscription_id', <uuid>, true)
-- With no tenant set nothing is visible. Operator work that spans tenants
-- (tenant administration, purges) sets mailgate.operator = 'on' for its
-- transaction instead. FORCE applies the policies to the table owner too;
-- only superusers and BYPASSRLS roles skip them, and the gateway runs as
-- neither (see db.EnsureRuntimeRole).

-- +goose StatementBegin
CREATE FUNCTION mailgate_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('mailgate.subscription_id', true), '')::uuid $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION mailgate_operator() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('mailgate.operator', true), '') = 'on' $$;
-- +goose StatementEnd

ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscriptions
    USING (id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (mailgate_operator());

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sender_domains', 'accounts', 'messages', 'message_recipients',
                             'message_events', 'attachments', 'message_attachments', 'mailbox_entries']
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
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['subscriptions', 'sender_domains', 'accounts', 'messages', 'message_recipients',
                             'message_events', 'attachments', 'message_attachments', 'mailbox_entries']
    LOOP
        EXECUTE format('DROP POLICY tenant_isolation ON %I', t);
        EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I DISABLE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP FUNCTION mailgate_operator();
DROP FUNCTION mailgate_tenant();
