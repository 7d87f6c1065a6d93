// Command junitsum summarizes the junit.xml that the OCI conformance suite
// writes: one line "conformance TARGET: N passed, N failed, N skipped",
// then, for every failed spec, its name and the first lines of its failure
// message. It exits 0 when the report parses, whatever the counts; callers
// decide what a failure means for their target.
package main

import (
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"strings"
)

type testsuites struct {
	Suites []testsuite `xml:"testsuite"`
}

type testsuite struct {
	Cases []testcase `xml:"testcase"`
}

type testcase struct {
	Name    string   `xml:"name,attr"`
	Status  string   `xml:"status,attr"`
	Failure *message `xml:"failure"`
	Error   *message `xml:"error"`
	Skipped *message `xml:"skipped"`
}

type message struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
}

func main() {
	target := flag.String("target", "registry", "name of the target, printed in the summary")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: junitsum [-target NAME] junit.xml")
		os.Exit(2)
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "junitsum: %v\n", err)
		os.Exit(1)
	}
	var ts testsuites
	if err := xml.Unmarshal(b, &ts); err != nil {
		fmt.Fprintf(os.Stderr, "junitsum: parse %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	var passed, failed, skipped int
	var failures []string
	for _, s := range ts.Suites {
		for _, c := range s.Cases {
			// Specs are the [It] nodes; suite-level nodes (reporters,
			// BeforeSuite) count only when they fail.
			spec := strings.HasPrefix(c.Name, "[It] ")
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked":
				failed++
				failures = append(failures, describe(c))
			case !spec:
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				skipped++
			default:
				passed++
			}
		}
	}
	fmt.Printf("conformance %s: %d passed, %d failed, %d skipped\n", *target, passed, failed, skipped)
	for _, f := range failures {
		fmt.Println(f)
	}
}

// describe renders a failed case as "  FAIL name\n      message…",
// the message cut to a few lines so a CI log stays readable.
func describe(c testcase) string {
	name := strings.TrimPrefix(c.Name, "[It] ")
	name = strings.TrimPrefix(name, "OCI Distribution Conformance Tests ")
	m := c.Failure
	if m == nil {
		m = c.Error
	}
	msg := ""
	if m != nil {
		msg = m.Message
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) > 6 {
		lines = append(lines[:6], "…")
	}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		lines[i] = l
	}
	return fmt.Sprintf("  FAIL %s\n      %s", name, strings.Join(lines, " "))
}
