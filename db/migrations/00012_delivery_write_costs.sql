-- +goose Up
-- The event feed pages by (subscription_id, xact_id, id) since 00004, and a
-- single event is found by its primary key; (subscription_id, id) serves no
-- query any more, while every delivery inserts about five events, each
-- paying for the index (measured with pg_stat_statements in
-- BenchmarkDeliveryDrain: event inserts are most of an outcome's cost).
DROP INDEX message_events_feed_idx;

-- A recipient row is updated twice by every delivery (journal, outcome) in
-- columns no index covers, so the updates can be HOT (no index entry) when
-- its page has room: with the default fillfactor of 100 only 17 % were
-- (pg_stat_user_tables after BenchmarkDeliveryDrain/2KB).
ALTER TABLE message_recipients SET (fillfactor = 70);

-- +goose Down
ALTER TABLE message_recipients RESET (fillfactor);
CREATE INDEX message_events_feed_idx ON message_events (subscription_id, id);
