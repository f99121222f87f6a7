package push

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// recorder is a Pusher that records when and how much it was asked to push
// and answers from a script: fail[i] makes the i-th call fail.
type recorder struct {
	mu      sync.Mutex // the test reads calls while Run pushes
	start   time.Time
	calls   []call
	fail    map[int]bool
	partial map[int][2]int // sent, dropped returned together with a failure
	delay   time.Duration  // simulated time each push takes
	reject  int            // metrics dropped at the start of each successful chunk
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

type call struct {
	at   time.Duration
	size int
}

func (r *recorder) Push(ctx context.Context, chunk []engine.Metric) (int, int, error) {
	r.mu.Lock()
	i := len(r.calls)
	r.calls = append(r.calls, call{time.Since(r.start), len(chunk)})
	r.mu.Unlock()
	time.Sleep(r.delay)
	if r.fail[i] {
		p := r.partial[i]
		return p[0], p[1], errors.New("backend down")
	}
	d := min(r.reject, len(chunk))
	return len(chunk) - d, d, nil
}

type harness struct {
	t      *testing.T
	in     chan *engine.Batch
	stats  *engine.Stats
	c      Counters
	cancel context.CancelFunc
	done   chan error
	sent   int // metrics produced so far
}

func testOptions() Options {
	o := DefaultOptions(1)
	o.FlushInterval = 10
	o.MaxFlushInterval = 40
	o.ChunkSize = 10
	o.BufferLimit = 100
	return o
}

// validate checks o as the engine's registry does: the common options,
// then the push options.
func validate(o *Options) error {
	if err := o.ValidateCommon(); err != nil {
		return err
	}
	return o.Validate()
}

// start runs Run in the current synctest bubble.
func start(t *testing.T, o Options, p Pusher) *harness {
	if err := validate(&o); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	h := &harness{t: t, in: make(chan *engine.Batch), stats: engine.NewStats(), cancel: cancel, done: make(chan error, 1)}
	h.c = NewCounters(h.stats)
	go func() { h.done <- Run(ctx, h.in, engine.Module{Name: "test", Stats: h.stats}, o, p) }()
	return h
}

func (h *harness) send(n int) {
	h.in <- &engine.Batch{Metrics: metrics(h.sent, n)}
	h.sent += n
	synctest.Wait()
	h.checkBalance()
}

// checkBalance asserts that every metric produced is accounted for.
func (h *harness) checkBalance() {
	h.t.Helper()
	sent, dropped, buffered := h.c.Sent.Load(), h.c.Dropped.Load(), h.c.Buffered.Load()
	if got := h.c.Received.Load(); got != uint64(h.sent) {
		h.t.Fatalf("metrics_received = %d, want %d", got, h.sent)
	}
	if sent+dropped+uint64(buffered) != uint64(h.sent) {
		h.t.Fatalf("sent %d + dropped %d + buffered %d != produced %d", sent, dropped, buffered, h.sent)
	}
}

func atSeconds(calls []call) []float64 {
	var s []float64
	for _, c := range calls {
		s = append(s, c.at.Seconds())
	}
	return s
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRun_BackoffDoublesAndResets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &recorder{start: time.Now(), fail: map[int]bool{0: true, 1: true, 2: true, 3: true, 5: true}}
		h := start(t, testOptions(), p)
		h.send(5)
		// Interval 10 s, max 40 s: fail at 10 (→20), 30 (→40), 70 (→40,
		// capped), 110 (→40), succeed at 150 (→10).
		time.Sleep(155 * time.Second)
		h.send(1)
		// Fail at 160 (→20), succeed at 180 (→10): nothing queued at 190 and
		// 200, so the next batch goes out at 210.
		time.Sleep(46 * time.Second)
		h.send(1)
		time.Sleep(20 * time.Second)
		want := []float64{10, 30, 70, 110, 150, 160, 180, 210}
		if got := atSeconds(p.snapshot()); !equal(got, want) {
			t.Fatalf("push times %v, want %v", got, want)
		}
		if n := h.c.ConnectionErrors.Load(); n != 5 {
			t.Fatalf("connection_errors = %d, want 5", n)
		}
		if n := h.c.FlushErrors.Load(); n != 5 {
			t.Fatalf("flush_errors = %d, want 5", n)
		}
		h.checkBalance()
		close(h.in)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
		h.checkBalance()
		if h.c.Buffered.Load() != 0 || h.c.Sent.Load() != uint64(h.sent) {
			t.Fatalf("after close: buffered %d sent %d, want 0 and %d", h.c.Buffered.Load(), h.c.Sent.Load(), h.sent)
		}
	})
}

func TestRun_TrimsWhileBackendIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := map[int]bool{}
		for i := range 1000 {
			fail[i] = true
		}
		p := &recorder{start: time.Now(), fail: fail}
		h := start(t, testOptions(), p)
		for range 30 {
			h.send(7)
			time.Sleep(3 * time.Second)
		}
		// 210 produced into a queue of 100: trimmed to 50 when 105 were
		// held (dropping 55), then again at 106 (dropping 56).
		if got := h.c.DroppedFull.Load(); got != 111 {
			t.Fatalf("metrics_dropped_buffer_full = %d, want 111", got)
		}
		if got := h.c.Buffered.Load(); got != 99 {
			t.Fatalf("metrics_buffered = %d, want 99", got)
		}
		h.checkBalance()
		h.cancel()
		if err := <-h.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
		}
		if got := h.c.DroppedShutdown.Load(); got != 99 {
			t.Fatalf("metrics_dropped_shutdown = %d, want 99", got)
		}
		h.checkBalance()
	})
}

func TestRun_CountAndTimeLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.PushCountLimit = 25
		p := &recorder{start: time.Now()}
		h := start(t, o, p)
		h.send(60)
		time.Sleep(25 * time.Second)
		var sizes []int
		for _, c := range p.snapshot() {
			sizes = append(sizes, c.size)
		}
		// 25 per flush in chunks of 10: flushes at 10 and 20 s.
		if want := []int{10, 10, 5, 10, 10, 5}; !equal(sizes, want) {
			t.Fatalf("chunk sizes %v, want %v", sizes, want)
		}
		h.checkBalance()
		h.cancel()
		if err := <-h.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.PushTimeLimit = 5
		p := &recorder{start: time.Now(), delay: 2 * time.Second}
		h := start(t, o, p)
		h.send(60)
		time.Sleep(19 * time.Second)
		// Chunks start at 10, 12 and 14 s; at 16 s the time limit is over.
		if got, want := atSeconds(p.snapshot()), []float64{10, 12, 14}; !equal(got, want) {
			t.Fatalf("push times %v, want %v", got, want)
		}
		h.checkBalance()
		h.cancel()
		if err := <-h.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
		}
	})
}

func TestRun_PartialFailureKeepsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &recorder{start: time.Now(), fail: map[int]bool{0: true}, partial: map[int][2]int{0: {3, 2}}, reject: 1}
		h := start(t, testOptions(), p)
		h.send(10)
		time.Sleep(11 * time.Second)
		if h.c.Sent.Load() != 3 || h.c.Dropped.Load() != 2 || h.c.Buffered.Load() != 5 {
			t.Fatalf("after partial failure: sent %d dropped %d buffered %d, want 3 2 5",
				h.c.Sent.Load(), h.c.Dropped.Load(), h.c.Buffered.Load())
		}
		h.checkBalance()
		time.Sleep(20 * time.Second)
		// The retry pushes the 5 left; the recorder rejects one of them.
		if h.c.Sent.Load() != 7 || h.c.Dropped.Load() != 3 || h.c.Buffered.Load() != 0 {
			t.Fatalf("after retry: sent %d dropped %d buffered %d, want 7 3 0",
				h.c.Sent.Load(), h.c.Dropped.Load(), h.c.Buffered.Load())
		}
		if c := p.snapshot()[1]; c.size != 5 {
			t.Fatalf("retry pushed %d metrics, want the 5 left", c.size)
		}
		h.checkBalance()
		close(h.in)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestRun_FinalPushIgnoresLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := testOptions()
		o.PushCountLimit = 5
		p := &recorder{start: time.Now()}
		h := start(t, o, p)
		h.send(95)
		close(h.in)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
		if got := time.Since(p.start); got != 0 {
			t.Fatalf("final push waited %v for a flush tick", got)
		}
		if h.c.Sent.Load() != 95 || len(p.snapshot()) != 10 {
			t.Fatalf("final push sent %d in %d calls, want 95 in 10", h.c.Sent.Load(), len(p.snapshot()))
		}
		h.checkBalance()
	})
}

func TestRun_FinalPushFailureCountsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &recorder{start: time.Now(), fail: map[int]bool{1: true}}
		h := start(t, testOptions(), p)
		h.send(30)
		close(h.in)
		if err := <-h.done; err != nil {
			t.Fatal(err)
		}
		if h.c.Sent.Load() != 10 || h.c.DroppedShutdown.Load() != 20 || h.c.Buffered.Load() != 0 {
			t.Fatalf("sent %d dropped_shutdown %d buffered %d, want 10 20 0",
				h.c.Sent.Load(), h.c.DroppedShutdown.Load(), h.c.Buffered.Load())
		}
		h.checkBalance()
	})
}

func TestOptions_Validate(t *testing.T) {
	f := func(edit func(*Options), wantErr string) {
		t.Helper()
		o := DefaultOptions(2003)
		edit(&o)
		err := validate(&o)
		if wantErr == "" {
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err == nil || len(err.Error()) < len(wantErr) || err.Error()[:len(wantErr)] != wantErr {
			t.Fatalf("error %v, want prefix %q", err, wantErr)
		}
	}
	f(func(o *Options) {}, "")
	f(func(o *Options) { o.RemoteHosts = []string{"a:1", "[::1]:2", "::1", "b"} }, "")
	f(func(o *Options) { o.RemoteHosts = nil }, "remote_hosts")
	f(func(o *Options) { o.RemoteHosts = []string{"a:x"} }, "remote_hosts")
	f(func(o *Options) { o.RemoteHosts = []string{":80"} }, "remote_hosts")
	f(func(o *Options) { o.BufferLimit = 99 }, "buffer_limit")
	f(func(o *Options) { o.ChunkSize = 0 }, "chunk_size")
	f(func(o *Options) { o.MaxFlushInterval = 1 }, "max_flush_interval")
	f(func(o *Options) { o.PushCountLimit = 0 }, "push_count_limit")
	f(func(o *Options) { o.PushTimeLimit = 0 }, "push_time_limit")
	f(func(o *Options) { o.SocketTimeout = 0 }, "socket_timeout")
	f(func(o *Options) { o.FlushInterval = 0 }, "flush_interval")
}

// While memory is tight each batch halves what is held, counted under its
// own reason; the counts still add up.
func TestRun_TrimsWhileMemoryIsTight(t *testing.T) {
	stats := engine.NewStats()
	tight := false
	r := runner{o: testOptions(), c: NewCounters(stats), q: NewQueue(100), tight: func() bool { return tight }}
	received := 0
	f := func(n int, wantMemory, wantFull uint64, wantBuffered int) {
		t.Helper()
		r.add(metrics(received, n))
		received += n
		if got := r.c.DroppedMemory.Load(); got != wantMemory {
			t.Fatalf("metrics_dropped_memory_limit = %d, want %d", got, wantMemory)
		}
		if got := r.c.DroppedFull.Load(); got != wantFull {
			t.Fatalf("metrics_dropped_buffer_full = %d, want %d", got, wantFull)
		}
		if got := r.c.Buffered.Load(); got != int64(wantBuffered) || r.q.Len() != wantBuffered {
			t.Fatalf("buffered %d (queue %d), want %d", got, r.q.Len(), wantBuffered)
		}
		if r.c.Dropped.Load()+uint64(r.q.Len()) != uint64(received) || r.c.Received.Load() != uint64(received) {
			t.Fatalf("dropped %d + buffered %d != received %d", r.c.Dropped.Load(), r.q.Len(), received)
		}
	}
	f(60, 0, 0, 60)
	tight = true
	f(20, 40, 0, 40)
	f(10, 65, 0, 25)
	tight = false
	f(90, 65, 65, 50) // 115 held: buffer_limit trimming as before
	if first, _ := buckets(r.q.Peek(1)); first != 130 {
		t.Fatalf("oldest kept is %d, want 130: the oldest go first", first)
	}
}

// Run starts no goroutine of its own: a panicking Pusher reaches Run's
// caller, the module supervisor, which recovers and restarts the module,
// and what Run held is counted as dropped on the way out.
func TestRun_PusherPanicReachesTheCaller(t *testing.T) {
	stats := engine.NewStats()
	c := NewCounters(stats)
	in := make(chan *engine.Batch, 1)
	in <- &engine.Batch{Metrics: metrics(0, 5)}
	close(in)
	o := testOptions()
	if err := validate(&o); err != nil {
		t.Fatal(err)
	}
	p := PushFunc(func(context.Context, []engine.Metric) (int, int, error) { panic("encoder bug") })
	func() {
		defer func() {
			if v := recover(); v != "encoder bug" {
				t.Fatalf("recovered %v, want the Pusher's panic", v)
			}
		}()
		_ = Run(t.Context(), in, engine.Module{Name: "test", Stats: stats}, o, p)
	}()
	if c.Received.Load() != 5 || c.DroppedShutdown.Load() != 5 || c.Dropped.Load() != 5 || c.Buffered.Load() != 0 {
		t.Fatalf("received %d, dropped %d (shutdown %d), buffered %d; want 5, 5 (5), 0",
			c.Received.Load(), c.Dropped.Load(), c.DroppedShutdown.Load(), c.Buffered.Load())
	}
}

// poisonPusher fails permanently on a chunk holding a bucket in poison:
// whole (an HTTP 400) or after sending the prefix before it (datagrams).
type poisonPusher struct {
	poison    map[string]bool
	prefix    bool
	transient int // calls after which every push fails transiently
	calls     int
	sent      []string
}

func (p *poisonPusher) Push(_ context.Context, chunk []engine.Metric) (int, int, error) {
	p.calls++
	if p.transient > 0 && p.calls > p.transient {
		return 0, 0, errors.New("backend down")
	}
	for i, m := range chunk {
		if p.poison[m.Bucket] {
			if !p.prefix {
				return 0, 0, Permanent(errors.New("400 bad request"))
			}
			for _, m := range chunk[:i] {
				p.sent = append(p.sent, m.Bucket)
			}
			return i, 0, Permanent(syscall.EMSGSIZE)
		}
	}
	for _, m := range chunk {
		p.sent = append(p.sent, m.Bucket)
	}
	return len(chunk), 0, nil
}

// A permanent failure is isolated by bisection: exactly the failing metrics
// are dropped, under their reason, the rest delivered in the same flush, in
// order, without a backoff.
func TestRun_PermanentFailureDropsOnlyTheCulprits(t *testing.T) {
	f := func(prefix bool, reason string, poison ...string) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			p := &poisonPusher{poison: map[string]bool{}, prefix: prefix}
			for _, b := range poison {
				p.poison[b] = true
			}
			h := start(t, testOptions(), p)
			h.send(25)
			time.Sleep(11 * time.Second)
			h.checkBalance()
			if got := h.c.Dropped.Load(); got != uint64(len(poison)) {
				t.Fatalf("metrics_dropped = %d, want %d", got, len(poison))
			}
			if got := h.stats.Counter("metrics_dropped_" + reason).Load(); got != uint64(len(poison)) {
				t.Fatalf("metrics_dropped_%s = %d, want %d", reason, got, len(poison))
			}
			if h.c.Sent.Load() != uint64(25-len(poison)) || h.c.Buffered.Load() != 0 || h.c.ConnectionErrors.Load() != 0 {
				t.Fatalf("sent %d buffered %d connection_errors %d, want %d 0 0",
					h.c.Sent.Load(), h.c.Buffered.Load(), h.c.ConnectionErrors.Load(), 25-len(poison))
			}
			var want []string
			for _, m := range metrics(0, 25) {
				if !p.poison[m.Bucket] {
					want = append(want, m.Bucket)
				}
			}
			if !equal(p.sent, want) {
				t.Fatalf("delivered %v, want %v", p.sent, want)
			}
			close(h.in)
			if err := <-h.done; err != nil {
				t.Fatal(err)
			}
		})
	}
	f(false, ReasonRejected, "3")
	f(false, ReasonRejected, "0", "9", "10", "24")
	f(true, ReasonUnsendable, "5")
	f(true, ReasonUnsendable, "1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
}

// A transient failure met while bisecting stops the flush and backs off;
// what is not done stays queued.
func TestRun_TransientFailureWhileBisecting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &poisonPusher{poison: map[string]bool{"7": true}, transient: 2}
		h := start(t, testOptions(), p)
		h.send(10)
		time.Sleep(11 * time.Second)
		h.checkBalance()
		// Calls: the chunk (permanent), its first half 0..4 (sent), the
		// second half (transient failure).
		if h.c.Sent.Load() != 5 || h.c.Dropped.Load() != 0 || h.c.Buffered.Load() != 5 || h.c.ConnectionErrors.Load() != 1 {
			t.Fatalf("sent %d dropped %d buffered %d connection_errors %d, want 5 0 5 1",
				h.c.Sent.Load(), h.c.Dropped.Load(), h.c.Buffered.Load(), h.c.ConnectionErrors.Load())
		}
		h.cancel()
		if err := <-h.done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v after cancel, want context.Canceled", err)
		}
		h.checkBalance()
	})
}

func TestPartition(t *testing.T) {
	chunk := metrics(0, 6)
	n, scratch := Partition(chunk, []bool{false, true, true, false, true, false}, nil)
	var got []string
	for _, m := range chunk {
		got = append(got, m.Bucket)
	}
	if n != 3 || !equal(got, []string{"1", "2", "4", "0", "3", "5"}) {
		t.Fatalf("Partition: %d done, order %v", n, got)
	}
	if len(scratch) != 0 || cap(scratch) > 0 && scratch[:1][0].Bucket != "" {
		t.Fatalf("scratch keeps metrics: %v", scratch[:cap(scratch)])
	}
}
