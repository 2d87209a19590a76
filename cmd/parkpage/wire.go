package main

import (
	"fmt"
	"io"

	"github.com/parkpage/parkpage/internal/app"
)

// wire connects the parts of the appliance to the app.
func wire(a *app.App) error {
	return nil
}

func cmdRender(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "parkpage render: not built yet")
	return 1
}

func cmdRelaysOff(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "parkpage relays-off: not built yet")
	return 1
}
