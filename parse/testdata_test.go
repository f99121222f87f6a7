package parse

import (
	"strconv"
	"strings"
)

// taggedDatagram returns a datagram of n DogStatsD lines with three tags
// each, cycling through counters, gauges, timers and sets.
func taggedDatagram(n int) []byte {
	var b strings.Builder
	for i := range n {
		id := strconv.Itoa(i)
		switch i % 4 {
		case 0:
			b.WriteString("api_requests_" + id + ":1|c|@0.5")
		case 1:
			b.WriteString("queue_depth_" + id + ":-" + id + ".5|g")
		case 2:
			b.WriteString("request_latency_" + id + ":12.25:13|ms")
		case 3:
			b.WriteString("unique_users_" + id + ":user" + id + "|s")
		}
		b.WriteString("|#env:production,host:web-0" + id + ",region=eu-west-1\n")
	}
	return []byte(b.String())
}

// jsonDatagram returns a datagram of n flat JSON objects.
func jsonDatagram(n int) []byte {
	var b strings.Builder
	for i := range n {
		b.WriteString(`{"timestamp":1700000000,"host":"web-` + strconv.Itoa(i) + `","status":200,"latency":0.125,"ok":true,"msg":"GET /index.html"}` + "\n")
	}
	return []byte(b.String())
}
