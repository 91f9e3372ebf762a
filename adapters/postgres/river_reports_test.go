package postgres_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db/dbtest"
	"github.com/mailgate/mailgate/jobs"
)

// TestRiverReportsAgainstRiversMigrations runs every report read of River's
// tables (river_reports.go) on a schema migrated to the newest migration of
// the River module in go.mod, against jobs River's own client wrote: an
// upgrade that renames a column, a table or a state fails here.
func TestRiverReportsAgainstRiversMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := dbtest.Pool(t)

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		t.Fatal(err)
	}
	existing, err := migrator.ExistingVersions(ctx)
	if err != nil {
		t.Fatalf("river migrations applied: %v", err)
	}
	all := migrator.AllVersions()
	if len(existing) == 0 || existing[len(existing)-1].Version != all[len(all)-1].Version {
		t.Fatalf("the schema has River migrations %v, the module's newest is %d: the test would check an old schema", existing, all[len(all)-1].Version)
	}

	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Delivery jobs as the gateway inserts them (a due tag in the past is
	// available at once), on a queue of this test's own so the package's
	// other tests' jobs don't count.
	queue := "report_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	probe := jobs.DeliverMessageArgs{SubscriptionID: uuid.New(), MessageID: uuid.New()}
	before := time.Now().Add(-time.Second)
	inserted, err := client.InsertMany(ctx, []river.InsertManyParams{
		// Due an hour ago (a fair-queuing tag): waiting since it was created.
		{Args: probe, InsertOpts: &river.InsertOpts{Queue: queue, ScheduledAt: time.Now().Add(-time.Hour)}},
		{Args: probe, InsertOpts: &river.InsertOpts{Queue: queue}},
		{Args: probe, InsertOpts: &river.InsertOpts{Queue: queue, ScheduledAt: time.Now().Add(time.Hour)}},
		{Args: probe, InsertOpts: &river.InsertOpts{Queue: queue}},
	})
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Second)
	// A finished job says nothing about the backlog.
	if _, err := client.JobCancel(ctx, inserted[3].Job.ID); err != nil {
		t.Fatal(err)
	}

	stats, err := postgres.New(pool, nil).QueueStats(ctx)
	if err != nil {
		t.Fatalf("queue stats on River's current schema: %v", err)
	}
	got := map[string]postgres.QueueStat{}
	for _, s := range stats {
		if s.Queue == queue {
			got[s.State] = s
		}
	}
	if len(got) != 2 || got["available"].Jobs != 2 || got["scheduled"].Jobs != 1 {
		t.Fatalf("queue stats for %s: %+v; want 2 available and 1 scheduled, the cancelled one left out", queue, got)
	}
	if oldest := got["available"].OldestAvailableAt; oldest.Before(before) || oldest.After(after) {
		t.Fatalf("oldest available at %s, want its creation (between %s and %s), not its fair-queuing tag", oldest, before, after)
	}
	if !got["scheduled"].OldestAvailableAt.IsZero() {
		t.Fatalf("scheduled jobs carry no wait: %s", got["scheduled"].OldestAvailableAt)
	}
}

// riverWrite matches SQL that changes River's tables by hand.
var riverWrite = regexp.MustCompile(`(?i)\b(UPDATE|DELETE\s+FROM|INSERT\s+INTO|TRUNCATE(\s+TABLE)?)\s+("?[a-z_]+"?\.)?"?river_`)

// TestNoHandWrittenRiverWrites holds the rule that River's rows change only
// through River's client: no product source or migration writes River's
// tables in SQL.
// Tests may (to stage a crash or a vanished job), and so may benchmarks.
func TestNoHandWrittenRiverWrites(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		product := strings.HasSuffix(path, ".sql") || strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go")
		if d.IsDir() || !product {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range riverWrite.FindAllString(string(src), -1) {
			rel, _ := filepath.Rel(root, path)
			found = append(found, rel+": "+m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("hand-written writes to River's tables (use River's client: JobCancelTx, JobDeleteTx, JobRetryTx, InsertTx):\n%s", strings.Join(found, "\n"))
	}
}
