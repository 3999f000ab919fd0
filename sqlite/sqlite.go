// Package sqlite lets authsvc.OpenStore open SQLite files (sqlite:PATH or
// a plain path), with modernc.org/sqlite: no cgo. Import it for its side
// effect:
//
//	import _ "github.com/authsvc/authsvc/sqlite"
package sqlite

import (
	"errors"

	"modernc.org/sqlite" // registers the database/sql driver "sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/authsvc/authsvc/internal/driver"
)

func init() {
	driver.Register("sqlite", driver.Driver{SQLName: "sqlite", IsBusy: isBusy})
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}
