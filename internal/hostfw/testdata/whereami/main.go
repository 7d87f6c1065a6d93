// Command whereami prints the file /marker, as it sees it, and its stdin:
// run chrooted by Exec{Root}, it shows which tree it runs in.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	b, err := os.ReadFile("/marker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	in, _ := io.ReadAll(os.Stdin)
	fmt.Printf("%s|%s|%s", b, in, os.Args[1])
}
