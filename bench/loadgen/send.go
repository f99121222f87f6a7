package main

import (
	"net"
	"time"
)

// sender is one goroutine's share of the load: its own socket, its own
// place in the ring, its own pace.
type sender struct {
	conn  *net.UDPConn
	mmsg  *mmsgWriter // nil: one write per packet
	ring  *ring
	start int     // first ring packet, so senders do not send in lockstep
	rate  float64 // packets per second, 0 = flat out
	limit uint64  // packets to send, 0 = until the deadline
	batch int     // packets per pacing step (and per sendmmsg)

	// Owned by run until it returns.
	sent   tally
	errors uint64 // sends the kernel refused, not counted as sent
}

// run sends until limit packets are out or the deadline (zero: none)
// passes. Pacing sleeps once per batch towards an absolute schedule, so
// the achieved rate catches up after a late wake-up instead of drifting.
func (s *sender) run(begin, deadline time.Time) {
	P := s.ring.packets()
	p := s.start
	var tries uint64 // packets sent or refused: the pacing clock
	for {
		if s.limit > 0 && tries >= s.limit {
			return
		}
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			return
		}
		if s.rate > 0 {
			due := begin.Add(time.Duration(float64(tries) / s.rate * float64(time.Second)))
			if d := due.Sub(now); d > 0 {
				time.Sleep(d)
			}
		}
		n := min(s.batch, P-p)
		if s.limit > 0 {
			n = int(min(uint64(n), s.limit-tries))
		}
		k, err := s.write(p, n)
		s.ring.addTo(&s.sent, p, uint64(k))
		if err != nil {
			// The packet after the k sent was refused (typically
			// ECONNREFUSED from an earlier ICMP): skip it.
			s.errors++
			k++
		}
		p = (p + k) % P
		tries += uint64(k)
	}
}

// write sends packets [p, p+n) and returns how many went out before the
// first error.
func (s *sender) write(p, n int) (int, error) {
	if s.mmsg != nil {
		return s.mmsg.write(s.ring, p, n)
	}
	for i := range n {
		if _, err := s.conn.Write(s.ring.packet(p + i)); err != nil {
			return i, err
		}
	}
	return n, nil
}
