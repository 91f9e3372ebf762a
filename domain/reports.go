package domain

import "time"

// QueueStat is how many jobs of a queue are in one state, and since when
// the oldest of them has waited: what the store reports and the metrics
// export, declared once for both.
type QueueStat struct {
	Queue             string
	State             string
	Jobs              int64
	OldestAvailableAt time.Time
}

// PendingMessages is how many messages wait for delivery (queued or
// sending, scheduled and retrying included) and when the oldest of them was
// queued; zero when none is.
type PendingMessages struct {
	Count          int64
	OldestQueuedAt time.Time
}
