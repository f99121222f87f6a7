package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// protoField is one system_protocol field and the counter it reports, as
// "Section:Name" of /proc/net/snmp or /proc/net/netstat.
type protoField struct {
	name, counter string
}

// protoTable is bucky3's mapping, kept field for field (the README has it
// as a table). Tcp:OutRsts is reported as rx_resets as bucky3 did, since
// dashboards depend on the name.
var protoTable = [...]struct {
	name   string
	fields []protoField
}{
	{"ip", []protoField{
		{"rx_packets", "Ip:InReceives"},
		{"rx_dropped", "Ip:InDiscards"},
		{"rx_bytes", "IpExt:InOctets"},
		{"tx_packets", "Ip:OutRequests"},
		{"tx_dropped", "Ip:OutDiscards"},
		{"tx_bytes", "IpExt:OutOctets"},
	}},
	{"icmp", []protoField{
		{"rx_packets", "Icmp:InMsgs"},
		{"rx_errors", "Icmp:InErrors"},
		{"tx_packets", "Icmp:OutMsgs"},
		{"tx_errors", "Icmp:OutErrors"},
	}},
	{"udp", []protoField{
		{"rx_packets", "Udp:InDatagrams"},
		{"rx_errors", "Udp:InErrors"},
		{"tx_packets", "Udp:OutDatagrams"},
		{"rcvbuf_errors", "Udp:RcvbufErrors"},
		{"sndbuf_errors", "Udp:SndbufErrors"},
	}},
	{"tcp", []protoField{
		{"rx_packets", "Tcp:InSegs"},
		{"tx_packets", "Tcp:OutSegs"},
		{"retr_packets", "Tcp:RetransSegs"},
		{"tx_opens", "Tcp:ActiveOpens"},
		{"rx_opens", "Tcp:PassiveOpens"},
		{"conn_resets", "Tcp:EstabResets"},
		{"conn_count", "Tcp:CurrEstab"},
		{"rx_resets", "Tcp:OutRsts"},
		{"listen_overflows", "TcpExt:ListenOverflows"},
		{"listen_drops", "TcpExt:ListenDrops"},
		{"timeouts", "TcpExt:TCPTimeouts"},
		{"backlog_drops", "TcpExt:TCPBacklogDrop"},
		{"keep_alives", "TcpExt:TCPKeepAlive"},
		{"rx_syncookies", "TcpExt:SyncookiesRecv"},
		{"tx_syncookies", "TcpExt:SyncookiesSent"},
	}},
}

// maxProtoFields bounds the fields of one protocol (tcp's 15).
const maxProtoFields = 16

// protoSlot locates a counter's value in protoValues.
type protoSlot struct{ proto, field int }

// protoSlots indexes protoTable by section, then counter name, so that the
// parser's substrings look up without building "Section:Name" keys.
var protoSlots = func() map[string]map[string]protoSlot {
	slots := map[string]map[string]protoSlot{}
	for p, proto := range protoTable {
		for f, field := range proto.fields {
			section, name, _ := strings.Cut(field.counter, ":")
			if slots[section] == nil {
				slots[section] = map[string]protoSlot{}
			}
			slots[section][name] = protoSlot{p, f}
		}
	}
	return slots
}()

// protoValues holds the counters of one collection; have marks the ones
// the kernel wrote, so that a missing counter is left out, not zeroed.
type protoValues struct {
	v    [len(protoTable)][maxProtoFields]float64
	have [len(protoTable)][maxProtoFields]bool
}

// read adds the counters of the file at path. On a parse error it leaves
// pv as it was: a damaged file contributes nothing rather than a part.
func (pv *protoValues) read(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	next := *pv
	err = parseNetCounters(string(data), func(section, name string, v float64) {
		if s, ok := protoSlots[section][name]; ok {
			next.v[s.proto][s.field] = v
			next.have[s.proto][s.field] = true
		}
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	*pv = next
	return nil
}

// protocols emits system_protocol from net/snmp and net/netstat, which
// /proc/net links to this process's network namespace. procfs parses
// them, but v0.23 leaves TcpExt:TCPBacklogDrop unset, so they are parsed
// here; either file alone still yields its fields.
func (s *Stats) protocols(b *builder) {
	var pv protoValues
	snmpOK := s.check("net/snmp", pv.read(filepath.Join(s.opts.ProcPath, "net", "snmp")))
	netstatOK := s.check("net/netstat", pv.read(filepath.Join(s.opts.ProcPath, "net", "netstat")))
	if !snmpOK && !netstatOK {
		return
	}
	for p, proto := range protoTable {
		for f, field := range proto.fields {
			if pv.have[p][f] {
				b.field(field.name, pv.v[p][f])
			}
		}
		b.metric("system_protocol", tagName(proto.name))
	}
}

var errMalformed = errors.New("malformed counters")

// parseNetCounters parses the format of /proc/net/snmp and
// /proc/net/netstat: per section a line of counter names and a line of
// values, both prefixed by the section name and a colon:
//
//	Tcp: ActiveOpens PassiveOpens
//	Tcp: 32 2
//
// It calls visit for each counter, with section and name as substrings of
// data. It stops at the first malformed pair, having visited the counters
// before it.
func parseNetCounters(data string, visit func(section, name string, v float64)) error {
	for data != "" {
		var header, values string
		header, data, _ = strings.Cut(data, "\n")
		if strings.TrimSpace(header) == "" {
			continue
		}
		values, data, _ = strings.Cut(data, "\n")
		section, names, ok := strings.Cut(header, ":")
		vsection, vals, vok := strings.Cut(values, ":")
		if !ok || !vok || section != vsection || section == "" {
			return fmt.Errorf("%w: section %q: names without a matching values line", errMalformed, section)
		}
		for {
			var name, val string
			name, names = nextToken(names)
			val, vals = nextToken(vals)
			if name == "" && val == "" {
				break
			}
			if name == "" || val == "" {
				return fmt.Errorf("%w: section %q: names and values differ in number", errMalformed, section)
			}
			v, err := parseCounter(val)
			if err != nil {
				return fmt.Errorf("%w: section %q: counter %q: bad value %q", errMalformed, section, name, val)
			}
			visit(section, name, v)
		}
	}
	return nil
}

// nextToken returns the first space-separated token of s and the rest.
func nextToken(s string) (token, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

// parseCounter accepts an optionally negative decimal integer (Tcp's
// MaxConn is -1), which strconv.ParseFloat alone would widen to hex,
// exponents and "Inf".
func parseCounter(s string) (float64, error) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(s, 64)
}
