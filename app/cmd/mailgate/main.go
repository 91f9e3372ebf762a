// Command mailgate runs the Mailgate mail gateway and its operator commands.
package main

import (
	"context"
	"os"

	"github.com/mailgate/mailgate/app"
)

func main() {
	os.Exit(app.Main(context.Background(), app.Env{
		Args:   os.Args[1:],
		Getenv: os.Getenv,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}))
}
