package policy

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// Explanation is a decision with the rules tried to reach it: what
// `airlock policy explain` prints.
type Explanation struct {
	// Flow is the question. With NameOnly, only Src and Name are set: the
	// question is AllowsName's, the one the DNS server asks.
	Flow     Flow
	NameOnly bool
	Decision Decision
	// Steps are the rules tried, in processing order; the last one decided
	// when Decision names a rule.
	Steps []Step
	// Notes say which phases were not tried and why.
	Notes []string
}

// Step is one rule tried.
type Step struct {
	Type       CollectionType
	Group      string
	Collection string
	Rule       string
	Action     Action
	Matched    bool
	// Field is the key of the first rule field that did not match
	// ("protocols", "sourceAddresses", "destinationPorts", …); empty when
	// the rule matched.
	Field string
	// Detail says why, in words.
	Detail string
}

// try records that r was tried with the outcome field ("" = matched) and
// reports whether it matched. On a nil Explanation it only reports.
func (e *Explanation) try(r *rule, f *Flow, field string) bool {
	if e != nil {
		s := Step{Type: r.typ, Group: r.group, Collection: r.collection, Rule: r.name, Action: r.action, Matched: field == "", Field: field}
		if e.NameOnly {
			s.Detail = r.nameDetail(f, field)
		} else {
			s.Detail = r.detail(f, field)
		}
		e.Steps = append(e.Steps, s)
	}
	return field == ""
}

func (e *Explanation) note(s string) {
	if e != nil {
		e.Notes = append(e.Notes, s)
	}
}

// detail explains the outcome of a Decide step.
func (r *rule) detail(f *Flow, field string) string {
	dst := f.Dst.Addr()
	switch field {
	case "":
		switch r.typ {
		case TypeDNAT:
			return fmt.Sprintf("forwards to %s", r.trans)
		case TypeNetwork:
			if i := r.resolvedName(f.DstNames); i >= 0 && !r.dst.contains(dst) {
				return fmt.Sprintf("%s was resolved for %s, a destinationFqdn", dst, f.DstNames[i])
			}
			if f.Proto == ProtoICMP {
				return fmt.Sprintf("icmp to %s, in %s", dst, r.dst)
			}
			return fmt.Sprintf("%s to %s port %d, in %s", f.Proto, dst, f.Dst.Port(), r.dst)
		default:
			want := appProto{f.App, f.Dst.Port()}
			t := r.targets[r.target(f.Name, &want)]
			return fmt.Sprintf("%s matches %s for %s%s", f.Name, t.pattern, want, tagSuffix(t.tag))
		}
	case "protocols":
		if r.typ == TypeApplication {
			want := appProto{f.App, f.Dst.Port()}
			t := r.targets[r.target(f.Name, nil)]
			return fmt.Sprintf("%s matches %s%s, but for %s only, not %s", f.Name, t.pattern, tagSuffix(t.tag), joinProtos(t.protos), want)
		}
		return fmt.Sprintf("%s is not in %s", f.Proto, r.protos)
	case "sourceAddresses":
		return fmt.Sprintf("%s is not in %s", f.Src, r.src)
	case "destinationPorts":
		if r.typ == TypeDNAT {
			return fmt.Sprintf("port %d is not the DNAT port %d", f.Dst.Port(), r.listen.Port())
		}
		return fmt.Sprintf("port %d is not in %s", f.Dst.Port(), portList(r.ports))
	case "destinationAddresses":
		if r.typ == TypeDNAT {
			return fmt.Sprintf("%s is not the DNAT address %s", dst, r.listen.Addr())
		}
		return fmt.Sprintf("%s is not in %s", dst, r.dst)
	case "destinationFqdns", "destinationAddresses/destinationFqdns":
		s := ""
		if field != "destinationFqdns" {
			s = fmt.Sprintf("%s is not in %s, and ", dst, r.dst)
		}
		return s + fmt.Sprintf("no name resolved to %s (%s) is in %s", dst, nameList(f.DstNames, "none known"), nameList(r.dstNames, ""))
	default: // targetFqdns, fqdnTags
		return fmt.Sprintf("%s matches no target", f.Name)
	}
}

// nameDetail explains the outcome of an AllowsName step.
func (r *rule) nameDetail(f *Flow, field string) string {
	switch field {
	case "":
		if r.typ == TypeNetwork {
			return fmt.Sprintf("%s is a destinationFqdn", f.Name)
		}
		t := r.targets[r.target(f.Name, nil)]
		return fmt.Sprintf("%s matches %s%s", f.Name, t.pattern, tagSuffix(t.tag))
	case "sourceAddresses":
		return fmt.Sprintf("%s is not in %s", f.Src, r.src)
	case "destinationFqdns":
		if len(r.dstNames) == 0 {
			return "no destinationFqdns"
		}
		return fmt.Sprintf("%s is not in %s", f.Name, nameList(r.dstNames, ""))
	}
	return fmt.Sprintf("%s matches no target", f.Name)
}

func tagSuffix(tag string) string {
	if tag == "" {
		return ""
	}
	return " (tag " + tag + ")"
}

func (s addrSet) String() string {
	if s.any {
		return "[*]"
	}
	parts := make([]string, len(s.prefixes))
	for i, p := range s.prefixes {
		if p.IsSingleIP() {
			parts[i] = p.Addr().String()
		} else {
			parts[i] = p.String()
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func portList(ports []portRange) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = p.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func nameList(names []dnsname.Name, empty string) string {
	if len(names) == 0 && empty != "" {
		return empty
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// WriteTo prints the explanation as `airlock policy explain` shows it. It
// implements io.WriterTo, so the caller learns about write errors.
func (e Explanation) WriteTo(w io.Writer) (int64, error) {
	var b bytes.Buffer
	if e.NameOnly {
		fmt.Fprintf(&b, "question  may %s resolve %s? (DNS)\n", addrOrAny(e.Flow.Src), nameOrNone(e.Flow.Name))
	} else {
		f := e.Flow
		fmt.Fprintf(&b, "flow      %s %s -> %s", f.Proto, addrOrAny(f.Src), f.Dst)
		if f.App != AppNone {
			fmt.Fprintf(&b, " %s", f.App)
		}
		if !f.Name.IsZero() {
			fmt.Fprintf(&b, " name %s", f.Name)
		}
		b.WriteString("\n")
		if len(f.DstNames) > 0 {
			fmt.Fprintf(&b, "resolved  %s is an address of %s\n", f.Dst.Addr(), nameList(f.DstNames, ""))
		}
	}
	d := e.Decision
	fmt.Fprintf(&b, "verdict   %s (%s: %s)\n", d.Verdict, d.Reason, d.Reason.Meaning())
	if d.Rule != "" {
		fmt.Fprintf(&b, "rule      %s %s/%s/%s\n", d.Type, d.Group, d.Collection, d.Rule)
	}
	fmt.Fprintf(&b, "tried     %d rule%s\n", len(e.Steps), plural(len(e.Steps)))
	if len(e.Steps) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  #\tTYPE\tGROUP/COLLECTION/RULE\tACTION\tMATCH\tWHY")
		for i, s := range e.Steps {
			match, why := "no", s.Field+": "+s.Detail
			if s.Matched {
				match, why = "yes", s.Detail
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s/%s/%s\t%s\t%s\t%s\n", i+1, s.Type, s.Group, s.Collection, s.Rule, s.Action, match, why)
		}
		tw.Flush()
	}
	for _, n := range e.Notes {
		fmt.Fprintf(&b, "note      %s\n", n)
	}
	n, err := w.Write(b.Bytes())
	return int64(n), err
}

// String returns what WriteTo prints.
func (e Explanation) String() string {
	var b strings.Builder
	_, _ = e.WriteTo(&b)
	return b.String()
}

func addrOrAny(a netip.Addr) string {
	if !a.IsValid() {
		return "(no source)"
	}
	return a.String()
}

func nameOrNone(n dnsname.Name) string {
	if n.IsZero() {
		return "(no name)"
	}
	return n.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
