// Command staticprobe synthesises one phrase and prints the sample count.
// TestStaticLink builds it as a fully static binary with -tags static_flite,
// the way the appliance image links parkpage, and runs it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/parkpage/parkpage/internal/tts"
)

func main() {
	e, err := tts.New(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pcm, err := e.Synthesize(context.Background(), "Sales call on seven oh four")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(len(pcm))
}
