// Command nodriver opens a store without linking a driver: OpenStore must
// name the import to add (resource_test.go runs it).
package main

import (
	"context"
	"fmt"

	"github.com/authsvc/authsvc"
)

func main() {
	for _, url := range []string{"sqlite:never-created.db", "postgres://user:S3cretPW@127.0.0.1:1/db"} {
		_, err := authsvc.OpenStore(context.Background(), url)
		fmt.Println(err)
	}
}
