package learn

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// Components a record comes from; also the component names policy.Hits
// counts for.
const (
	ComponentGateway = "gateway"
	ComponentDNS     = "dns"
)

// The messages of the two decision records (internal/egress/record.go,
// internal/dnsserver/record.go).
const (
	msgGateway = "egress decision"
	msgDNS     = "dns decision"
)

// MaxLineBytes is the longest line ParseRecord and Reader look at; a
// decision record is a few hundred bytes, so a longer line is not one.
const MaxLineBytes = 64 << 10

// ErrSkip is returned for a line that is not a decision record: not a JSON
// object, another message, too long. Callers skip such lines and count them.
var ErrSkip = errors.New("not a decision record")

// ErrMalformed is wrapped by the error returned for a line that claims to be
// a decision record but lacks a field learn needs or has one of the wrong
// type.
var ErrMalformed = errors.New("malformed decision record")

// Record is one decision record, as learn needs it.
type Record struct {
	// Component is ComponentGateway or ComponentDNS.
	Component string
	// Time is the record's time; zero when the line has none.
	Time time.Time
	// Src is the client address (the port of the gateway's "IP:PORT" is
	// dropped).
	Src netip.Addr
	// Dst is the gateway's original destination; invalid when the client
	// gave the explicit proxy a name, and for DNS records.
	Dst netip.AddrPort
	// Port is the destination port (gateway; 0 for DNS).
	Port uint16
	// Name is the SNI, Host or CONNECT name (gateway) or the question name
	// (DNS); zero when absent or not a valid host name.
	Name dnsname.Name
	// QType is the DNS question type ("A", "AAAA", …); empty for the
	// gateway.
	QType string
	// Proto is the flow's transport (gateway only; a DNS record's proto is
	// the transport of the query and is not kept).
	Proto policy.Proto
	// App is https, http or none (gateway only).
	App policy.App
	// Listener is proxy, transparent or l4 (gateway only).
	Listener string
	// Decision is the verdict, reason and deciding rule.
	Decision policy.Decision
	// Report is true when the component ran in report mode (mode: report).
	Report bool
	// WouldDeny is true when report mode let a deny through.
	WouldDeny bool
	// BytesUp and BytesDown are the bytes relayed (gateway only).
	BytesUp, BytesDown int64
}

// Denied reports whether the record is a deny, enforced or (in report mode)
// would-be.
func (r Record) Denied() bool { return r.Decision.Verdict == policy.VerdictDeny }

// wire is the JSON of both records; unknown keys are ignored.
type wire struct {
	Time       string `json:"time"`
	Msg        string `json:"msg"`
	Listener   string `json:"listener"`
	Src        string `json:"src"`
	Dst        string `json:"dst"`
	Port       int    `json:"port"`
	Name       string `json:"name"`
	QName      string `json:"qname"`
	QType      string `json:"qtype"`
	Proto      string `json:"proto"`
	App        string `json:"app"`
	Verdict    string `json:"verdict"`
	Reason     string `json:"reason"`
	Type       string `json:"type"`
	RuleType   string `json:"rule_type"`
	Group      string `json:"group"`
	Collection string `json:"collection"`
	Rule       string `json:"rule"`
	Mode       string `json:"mode"`
	WouldDeny  bool   `json:"would_deny"`
	BytesUp    int64  `json:"bytes_up"`
	BytesDown  int64  `json:"bytes_down"`
}

// ParseRecord parses one log line. Lines that are not decision records
// give ErrSkip; decision records without a usable source or verdict give an
// error wrapping ErrMalformed. It never panics, and its work is bounded by
// MaxLineBytes.
func ParseRecord(line []byte) (Record, error) {
	line = bytes.TrimSpace(line)
	// Cheap filters first: most lines of a busy log are other messages.
	if len(line) == 0 || len(line) > MaxLineBytes || line[0] != '{' || !bytes.Contains(line, []byte("decision")) {
		return Record{}, ErrSkip
	}
	var w wire
	if err := json.Unmarshal(line, &w); err != nil {
		// Not JSON, or JSON whose msg we never got to: only a line that
		// says it is a decision record is malformed.
		if bytes.Contains(line, []byte(`"`+msgGateway+`"`)) || bytes.Contains(line, []byte(`"`+msgDNS+`"`)) {
			return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return Record{}, ErrSkip
	}
	var r Record
	switch w.Msg {
	case msgGateway:
		r.Component = ComponentGateway
	case msgDNS:
		r.Component = ComponentDNS
	default:
		return Record{}, ErrSkip
	}
	if t, err := time.Parse(time.RFC3339Nano, w.Time); err == nil {
		r.Time = t
	}
	var err error
	if r.Src, err = parseSrc(w.Src); err != nil {
		return Record{}, err
	}
	switch w.Verdict {
	case string(policy.VerdictAllow), string(policy.VerdictDeny):
		r.Decision.Verdict = policy.Verdict(w.Verdict)
	default:
		return Record{}, fmt.Errorf("%w: verdict %q: want allow or deny", ErrMalformed, clip(w.Verdict))
	}
	r.Decision.Reason = policy.Reason(w.Reason)
	r.Decision.Group, r.Decision.Collection, r.Decision.Rule = w.Group, w.Collection, w.Rule
	r.Report = w.Mode == "report"
	r.WouldDeny = w.WouldDeny
	if r.Component == ComponentDNS {
		r.Decision.Type = policy.CollectionType(w.RuleType)
		r.QType = w.QType
		r.Name, _ = dnsname.Parse(w.QName)
		return r, nil
	}
	r.Decision.Type = policy.CollectionType(w.Type)
	r.Listener = w.Listener
	if w.Port < 0 || w.Port > 65535 {
		return Record{}, fmt.Errorf("%w: port %d out of range", ErrMalformed, w.Port)
	}
	r.Port = uint16(w.Port)
	if w.Dst != "" {
		d, err := netip.ParseAddrPort(w.Dst)
		if err != nil {
			return Record{}, fmt.Errorf("%w: dst %q: want IP:PORT", ErrMalformed, clip(w.Dst))
		}
		r.Dst = netip.AddrPortFrom(d.Addr().Unmap(), d.Port())
		if r.Port == 0 {
			r.Port = d.Port()
		}
	}
	if w.Name != "" {
		// An invalid name (logged raw) cannot become a rule; the record
		// still counts as a flow to its destination address.
		r.Name, _ = dnsname.Parse(w.Name)
	}
	r.Proto = policy.ProtoTCP
	if w.Proto != "" {
		if r.Proto, err = policy.ParseProto(w.Proto); err != nil {
			return Record{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	switch w.App {
	case "https":
		r.App = policy.AppHTTPS
	case "http":
		r.App = policy.AppHTTP
	}
	r.BytesUp, r.BytesDown = max(w.BytesUp, 0), max(w.BytesDown, 0)
	return r, nil
}

// parseSrc parses the gateway's "IP:PORT" or the DNS server's "IP".
func parseSrc(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: src %q: want IP or IP:PORT", ErrMalformed, clip(s))
	}
	return a.Unmap(), nil
}

// clip bounds a value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// Reader reads records line by line from a log stream. Lines longer than
// MaxLineBytes are skipped without being held in memory.
type Reader struct {
	br *bufio.Reader
	// Lines, Skipped and Malformed count what Next has read: every line,
	// the lines that were not decision records (ErrSkip, overlong) and the
	// decision records ParseRecord refused.
	Lines, Skipped, Malformed int64
	buf                       []byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next decision record; io.EOF at the end of the stream,
// or the stream's read error.
func (rd *Reader) Next() (Record, error) {
	for {
		line, err := rd.line()
		if line == nil && err != nil {
			return Record{}, err
		}
		rd.Lines++
		if line != nil {
			rec, perr := ParseRecord(line)
			switch {
			case perr == nil:
				return rec, nil
			case errors.Is(perr, ErrSkip):
				rd.Skipped++
			default:
				rd.Malformed++
			}
		} else {
			rd.Skipped++
		}
		if err != nil {
			return Record{}, err
		}
	}
}

// line returns the next line without its newline, or nil with a nil error
// for a line longer than MaxLineBytes (consumed and dropped). At the end it
// returns the last unterminated line with io.EOF.
func (rd *Reader) line() ([]byte, error) {
	rd.buf = rd.buf[:0]
	tooLong := false
	for {
		chunk, err := rd.br.ReadSlice('\n')
		if !tooLong {
			if len(rd.buf)+len(chunk) > MaxLineBytes+1 {
				tooLong, rd.buf = true, rd.buf[:0]
			} else {
				rd.buf = append(rd.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			if tooLong {
				return nil, nil
			}
			return rd.buf[:len(rd.buf)-1], nil
		case errors.Is(err, io.EOF) && (len(rd.buf) > 0 || tooLong):
			if tooLong {
				return nil, nil
			}
			return rd.buf, nil
		default:
			return nil, err
		}
	}
}
