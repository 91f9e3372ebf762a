// Package reliability is Mailgate's fault suite (`make reliability`): it runs
// the real mailgate binary as separate API and worker processes against a
// PostgreSQL cluster of its own, an SMTP sink that logs every (Message-ID,
// recipient) it accepts, and TCP fault proxies in front of the relay and the
// database, then counts lost and duplicated deliveries per scenario and
// writes docs/reliability.md.
//
// Its tests carry the build tag `reliability`, so `make test` does not run
// them; MAILGATE_RELIABILITY_SCALE=short|full sizes them.
package reliability
