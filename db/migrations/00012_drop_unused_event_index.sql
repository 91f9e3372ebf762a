-- +goose Up
-- The event feed pages by (subscription_id, xact_id, id) since 00004, and a
-- single event is found by its primary key; (subscription_id, id) serves no
-- query any more, while every delivery inserts about five events, each
-- paying for the index (measured with pg_stat_statements in
-- BenchmarkDeliveryDrain: event inserts are most of an outcome's cost).
DROP INDEX message_events_feed_idx;

-- +goose Down
CREATE INDEX message_events_feed_idx ON message_events (subscription_id, id);
