// Package postgres lets authsvc.OpenStore open PostgreSQL URLs
// (postgres://…), with lib/pq. Import it for its side effect:
//
//	import _ "github.com/authsvc/authsvc/postgres"
package postgres

import (
	"context"
	"time"

	"github.com/lib/pq" // registers the database/sql driver "postgres"

	"github.com/authsvc/authsvc/internal/driver"
)

func init() {
	driver.Register("postgres", driver.Driver{SQLName: "postgres", Listen: listen})
}

// listen uses lib/pq's Listener, which reconnects by itself; notify is
// also called after each reconnection so the caller catches up on what it
// missed meanwhile.
func listen(ctx context.Context, dsn, channel string, notify func()) error {
	l := pq.NewListener(dsn, 100*time.Millisecond, 5*time.Second, nil)
	defer l.Close()
	if err := l.Listen(channel); err != nil {
		return err
	}
	notify() // anything committed before the LISTEN took effect
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.Notify:
			// A nil notification means the connection was re-established.
			notify()
		case <-ping.C:
			go l.Ping() // surfaces a dead connection sooner
		}
	}
}
