package postgres

// The feed's statements, for tests that EXPLAIN them.
const (
	EventFeedQuery    = eventFeedQuery
	EventFeedLagQuery = eventFeedLagQuery
)
