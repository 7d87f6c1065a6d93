// Command bcrypthash prints the bcrypt hash of a password read from stdin
// (one line, trailing newline removed). scripts/conformance.sh and the bench
// scripts use it to give airlock a user without apache2-utils.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintf(os.Stderr, "bcrypthash: read password: %v\n", err)
		os.Exit(2)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(os.Stderr, "bcrypthash: empty password")
		os.Exit(2)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bcrypthash: hash: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(string(h))
}
