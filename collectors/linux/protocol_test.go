package linux

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// visitAll renders what parseNetCounters visits as "Section:Name=v ...".
func visitAll(data string) (string, error) {
	var out []string
	err := parseNetCounters(data, func(section, name string, v float64) {
		out = append(out, section+":"+name+"="+strconv.FormatFloat(v, 'f', -1, 64))
	})
	return strings.Join(out, " "), err
}

func TestParseNetCounters_Success(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		for range 2 { // no state carries over between calls
			got, err := visitAll(in)
			if err != nil || got != want {
				t.Fatalf("parseNetCounters(%q) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
	f("", "")
	f("\n\n", "")
	f("Tcp: ActiveOpens MaxConn\nTcp: 32 -1\n", "Tcp:ActiveOpens=32 Tcp:MaxConn=-1")
	// No trailing newline, tabs and runs of spaces, blank lines between sections.
	f("Ip: A  B\nIp:\t1 2\n\nUdp: C\nUdp: 18446744073709551615",
		"Ip:A=1 Ip:B=2 Udp:C=18446744073709552000") // float64, as every field
	f("IcmpMsg: InType3\nIcmpMsg: 1\n", "IcmpMsg:InType3=1")
	f("Empty:\nEmpty:\n", "")
}

func TestParseNetCounters_Failure(t *testing.T) {
	f := func(in, visited string) {
		t.Helper()
		got, err := visitAll(in)
		if !errors.Is(err, errMalformed) {
			t.Fatalf("parseNetCounters(%q): error %v, want errMalformed", in, err)
		}
		if got != visited {
			t.Fatalf("parseNetCounters(%q) visited %q before failing, want %q", in, got, visited)
		}
	}
	f("Tcp: A B\n", "")                    // names without values
	f("Tcp: A B\nUdp: 1 2\n", "")          // values of another section
	f("Tcp: A B\nTcp: 1\n", "Tcp:A=1")     // fewer values
	f("Tcp: A\nTcp: 1 2\n", "Tcp:A=1")     // more values
	f("Tcp: A B\nTcp: 1 0x2\n", "Tcp:A=1") // not decimal
	f("Tcp: A\nTcp: Inf\n", "")            // ParseFloat would take it
	f("Tcp: A\nTcp: -\n", "")
	f("Ip: A\nIp: 1\nno colon\nno colon\n", "Ip:A=1")
	f(": A\n: 1\n", "")
}

// TestProtoValues_Read checks that a damaged file adds nothing, not the
// counters before the damage.
func TestProtoValues_Read(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "snmp", "Tcp: InSegs OutSegs\nTcp: 5 6\n")
	bad := writeFile(t, dir, "netstat", "TcpExt: ListenDrops TCPTimeouts\nTcpExt: 7 x\n")
	var pv protoValues
	if err := pv.read(good); err != nil {
		t.Fatal(err)
	}
	if err := pv.read(bad); !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("error %v, want errMalformed naming %s", err, bad)
	}
	tcp := len(protoTable) - 1
	if !pv.have[tcp][0] || pv.v[tcp][0] != 5 || !pv.have[tcp][1] || pv.v[tcp][1] != 6 {
		t.Errorf("tcp rx/tx packets lost: %v %v", pv.v[tcp][:2], pv.have[tcp][:2])
	}
	for f, field := range protoTable[tcp].fields {
		if field.name == "listen_drops" && pv.have[tcp][f] {
			t.Errorf("listen_drops taken from a damaged file")
		}
	}
}

func TestProtocols_Table(t *testing.T) {
	for _, p := range protoTable {
		if len(p.fields) > maxProtoFields {
			t.Errorf("%s has %d fields, above maxProtoFields", p.name, len(p.fields))
		}
	}
}

func FuzzParseNetCounters(f *testing.F) {
	f.Add("Tcp: ActiveOpens MaxConn\nTcp: 32 -1\n")
	f.Add("Ip: A  B\nIp:\t1 2\n\nUdp: C\nUdp: 18446744073709551615")
	f.Add("Tcp: A B\nTcp: 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		type counter struct {
			section, name string
			v             float64
		}
		var got []counter
		err := parseNetCounters(in, func(section, name string, v float64) {
			if section == "" || name == "" || strings.ContainsAny(name, " \t\n") || strings.Contains(section, "\n") {
				t.Fatalf("bad counter %q %q", section, name)
			}
			got = append(got, counter{section, name, v})
		})
		if err != nil {
			return
		}
		// Re-rendering an accepted input, one section per pair, parses to
		// the same counters.
		var b strings.Builder
		for _, c := range got {
			b.WriteString(c.section + ": " + c.name + "\n" + c.section + ": " + strconv.FormatFloat(c.v, 'f', -1, 64) + "\n")
		}
		i := 0
		err = parseNetCounters(b.String(), func(section, name string, v float64) {
			if i >= len(got) || (counter{section, name, v}) != got[i] {
				t.Fatalf("round trip of %q: counter %d is %q %q %v", in, i, section, name, v)
			}
			i++
		})
		if err != nil || i != len(got) {
			t.Fatalf("round trip of %q: %v after %d of %d counters", in, err, i, len(got))
		}
	})
}
