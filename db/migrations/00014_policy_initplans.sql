-- +goose Up
-- Every tenant_isolation policy calls mailgate_tenant() and
-- mailgate_operator(), which read a setting. Written bare, the planner
-- inlines them into each row's check, so an UPDATE reads both settings once
-- per row it scans and again per row it writes; wrapped in a scalar
-- subquery each becomes an init plan, evaluated once per statement. The
-- predicate is the same (a setting can't change within a statement).
-- Measured on 20,000-row updates in the operator scope as a non-owner role:
-- 4.9 -> 3.6 µs a row. The delivery path's bulk statements check every
-- message, recipient and event row they touch this way.
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sender_domains', 'accounts', 'messages', 'message_recipients', 'message_events',
                             'attachments', 'message_attachments', 'mailbox_entries', 'suppressions', 'webhooks',
                             'idempotency_keys', 'dkim_keys', 'delivery_clocks', 'webhook_queue_clocks',
                             'api_rate_limits', 'inbound_messages', 'mailbox_entry_attachments']
    LOOP
        EXECUTE format('ALTER POLICY tenant_isolation ON %I
                            USING (subscription_id = (SELECT mailgate_tenant()) OR (SELECT mailgate_operator()))
                            WITH CHECK (subscription_id = (SELECT mailgate_tenant()) OR (SELECT mailgate_operator()))', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
ALTER POLICY tenant_isolation ON subscriptions
    USING (id = (SELECT mailgate_tenant()) OR (SELECT mailgate_operator()))
    WITH CHECK ((SELECT mailgate_operator()));

-- +goose Down
ALTER POLICY tenant_isolation ON subscriptions
    USING (id = mailgate_tenant() OR mailgate_operator())
    WITH CHECK (mailgate_operator());
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sender_domains', 'accounts', 'messages', 'message_recipients', 'message_events',
                             'attachments', 'message_attachments', 'mailbox_entries', 'suppressions', 'webhooks',
                             'idempotency_keys', 'dkim_keys', 'delivery_clocks', 'webhook_queue_clocks',
                             'api_rate_limits', 'inbound_messages', 'mailbox_entry_attachments']
    LOOP
        EXECUTE format('ALTER POLICY tenant_isolation ON %I
                            USING (subscription_id = mailgate_tenant() OR mailgate_operator())
                            WITH CHECK (subscription_id = mailgate_tenant() OR mailgate_operator())', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
