// Package postgres lets authsvc.OpenStore open PostgreSQL URLs
// (postgres://…), with lib/pq. Import it for its side effect:
//
//	import _ "github.com/authsvc/authsvc/postgres"
package postgres

import (
	"context"
	"database/sql/driver"
	"net"
	"time"

	"github.com/lib/pq" // registers the database/sql driver "postgres"

	authdriver "github.com/authsvc/authsvc/internal/driver"
)

func init() {
	authdriver.Register("postgres", authdriver.Driver{SQLName: "postgres", Connector: connector, Listen: listen})
}

// connector opens connections whose every read and write has a deadline:
// against a blackholed server (a partition drops packets, nothing is
// closed) lib/pq would otherwise wait for ever, whatever the context says
// (on cancellation it only asks the server, over the same silent network,
// to cancel the query).
func connector(dsn string, timeout func() time.Duration) (driver.Connector, error) {
	c, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	c.Dialer(deadlineDialer{timeout: timeout})
	return c, nil
}

// deadlineDialer dials within timeout() and wraps the connection so that
// each read and write must progress within timeout().
type deadlineDialer struct{ timeout func() time.Duration }

func (d deadlineDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d deadlineDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d deadlineDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: d.timeout()}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return deadlineConn{Conn: c, timeout: d.timeout}, nil
}

// deadlineConn sets a fresh deadline before each read and write: a query
// may stream for as long as it makes progress, but a silent server fails
// it within timeout().
type deadlineConn struct {
	net.Conn
	timeout func() time.Duration
}

func (c deadlineConn) Read(b []byte) (int, error) {
	c.SetReadDeadline(time.Now().Add(c.timeout()))
	return c.Conn.Read(b)
}

func (c deadlineConn) Write(b []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(c.timeout()))
	return c.Conn.Write(b)
}

// listen uses lib/pq's Listener, which reconnects by itself; notify is
// also called after each reconnection so the caller catches up on what it
// missed meanwhile. Its connection idles between notifications, so it has
// no read deadline (the caller's polling bounds how stale it can be), only
// a dial timeout.
func listen(ctx context.Context, dsn, channel string, dialTimeout time.Duration, notify func()) error {
	l := pq.NewDialListener(plainDialer{&net.Dialer{Timeout: dialTimeout}}, dsn, 100*time.Millisecond, 5*time.Second, nil)
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

// plainDialer is a net.Dialer as lib/pq's Dialer.
type plainDialer struct{ d *net.Dialer }

func (p plainDialer) Dial(network, address string) (net.Conn, error) {
	return p.d.Dial(network, address)
}

func (p plainDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	return (&net.Dialer{Timeout: timeout}).Dial(network, address)
}

func (p plainDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.d.DialContext(ctx, network, address)
}
