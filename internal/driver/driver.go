// Package driver is where the database drivers register what authsvc's
// store needs of them beyond database/sql, so that the root package links
// no driver: a program imports github.com/authsvc/authsvc/postgres or
// github.com/authsvc/authsvc/sqlite (or both), the way database/sql
// programs import theirs.
package driver

import (
	"context"
	"database/sql/driver"
	"sync"
	"time"
)

// Driver is one database's registration.
type Driver struct {
	// SQLName is the database/sql driver name ("postgres", "sqlite").
	SQLName string
	// Connector, when set, opens the database instead of sql.Open: every
	// read and write on its connections, and every dial, gives up after
	// timeout() (PostgreSQL: a partitioned network answers nothing, and a
	// cancelled context does not unblock lib/pq's read).
	Connector func(dsn string, timeout func() time.Duration) (driver.Connector, error)
	// Listen (PostgreSQL) calls notify whenever something is sent on
	// channel and after every reconnection, until ctx is done; dials give
	// up after dialTimeout.
	Listen func(ctx context.Context, dsn, channel string, dialTimeout time.Duration, notify func()) error
	// IsBusy (SQLite) reports whether err is "database is locked".
	IsBusy func(err error) bool
}

var (
	mu      sync.RWMutex // guards drivers
	drivers = map[string]Driver{}
)

// Register makes d available under dialect ("postgres" or "sqlite").
func Register(dialect string, d Driver) {
	mu.Lock()
	defer mu.Unlock()
	drivers[dialect] = d
}

// Lookup returns the driver registered for dialect.
func Lookup(dialect string) (Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := drivers[dialect]
	return d, ok
}
