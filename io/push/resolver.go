package push

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Resolver turns remote_hosts entries into addresses and resolves them again
// every ReresolveInterval, so that DNS changes reach a long-running agent.
//
// A Resolver is not safe for concurrent use: it belongs to the Run loop of
// one client.
type Resolver struct {
	entries []hostPort
	// Lookup resolves a host name (or IP literal) to addresses. It is
	// net.DefaultResolver.LookupNetIP with network "ip" unless replaced,
	// which tests do to simulate DNS.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	addrs      []netip.AddrPort
	resolvedAt time.Time
	complete   bool // every entry resolved last time
}

type hostPort struct {
	host string
	port uint16
}

// NewResolver returns a resolver for host[:port] entries; defaultPort applies
// to entries without a port. It does no I/O.
func NewResolver(entries []string, defaultPort int) (*Resolver, error) {
	r := &Resolver{Lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
	for _, e := range entries {
		h, p, err := SplitHostPort(e, defaultPort)
		if err != nil {
			return nil, err
		}
		r.entries = append(r.entries, hostPort{h, uint16(p)})
	}
	if len(r.entries) == 0 {
		return nil, errors.New("no remote hosts")
	}
	return r, nil
}

// Addrs returns every address of every entry. It resolves the entries when
// the last resolution is older than ReresolveInterval, and on every call
// while some entry fails to resolve, so that a name that starts resolving
// is picked up at the next push. A failed lookup keeps the previous
// addresses of the other entries usable; err is non-nil only when no
// address is known at all.
//
// The returned slice is valid until the next call.
func (r *Resolver) Addrs(ctx context.Context) ([]netip.AddrPort, error) {
	if r.complete && time.Since(r.resolvedAt) < ReresolveInterval {
		return r.addrs, nil
	}
	var addrs []netip.AddrPort
	var errs []error
	for _, e := range r.entries {
		ips, err := r.Lookup(ctx, e.host)
		if err == nil && len(ips) == 0 {
			err = fmt.Errorf("%s: no addresses", e.host)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve %w", err))
			continue
		}
		for _, ip := range ips {
			addrs = append(addrs, netip.AddrPortFrom(ip.Unmap(), e.port))
		}
	}
	r.complete = len(errs) == 0
	if len(addrs) > 0 || r.complete {
		r.addrs, r.resolvedAt = addrs, time.Now()
	}
	if len(r.addrs) == 0 {
		return nil, errors.Join(errs...)
	}
	return r.addrs, nil
}

// Pick returns one address chosen at random among Addrs, which is how TCP
// and HTTP clients spread a fleet's load over a cluster.
func (r *Resolver) Pick(ctx context.Context) (netip.AddrPort, error) {
	addrs, err := r.Addrs(ctx)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return addrs[rand.IntN(len(addrs))], nil
}
