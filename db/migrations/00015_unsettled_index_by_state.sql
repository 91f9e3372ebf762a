-- +goose Up
-- The reconciler reads the sending messages on every pass and sweeps the
-- queued ones in (updated_at, id) order a stretch at a time (FindStalled).
-- Keyed by updated_at alone, finding the few sending messages meant
-- reading past every queued one: 1.6 s a pass with a million queued
-- (BenchmarkDeliveryBacklog, auto_explain), every minute and at every
-- worker start. Led by the state, both are index ranges; it still holds
-- only unsettled messages, one entry each, as before.
DROP INDEX messages_unsettled_idx;
CREATE INDEX messages_unsettled_idx ON messages (state, updated_at, id) WHERE state IN ('queued', 'sending');

-- +goose Down
DROP INDEX messages_unsettled_idx;
CREATE INDEX messages_unsettled_idx ON messages (updated_at) WHERE state IN ('queued', 'sending');
