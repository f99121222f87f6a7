package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/prometheus/procfs"

	"github.com/bucky3/bucky3/engine"
)

// Stats is the docker_stats source: it polls the Docker Engine API and the
// containers' cgroups every flush interval and emits one batch per
// collection. Run must not be called concurrently with itself; the
// supervisor may call it again after it returned.
type Stats struct {
	name string
	log  *slog.Logger
	opts Options

	produced    *engine.Counter
	readErrors  *engine.Counter
	flushErrors *engine.Counter

	// The fields below belong to the goroutine running Run.

	// failing is set while collections fail, so that a daemon that is down
	// is logged when it goes down and when it comes back, not every
	// interval.
	failing bool
	// unreadable holds the files (and cgroup lookups) whose last read
	// failed, with the collection that last tried them, so that each is
	// logged once; entries of containers that are gone are dropped.
	unreadable map[string]uint64
	generation uint64
	// sizes holds each running container's last measured size, emitted
	// every collection and refreshed every filesystem_interval (sized).
	sizes map[string]size
	sized time.Time

	// beat is Begin/End around each collection: a collection that hangs
	// shows as stuck, the wait between two does not.
	beat *engine.Beat
}

// size is what inspect with size=1 says about a container.
type size struct{ rootFS, rw int64 }

// New returns a docker_stats source configured by o, which must have
// passed Validate (the registry sees to it). It does no I/O: the daemon is
// first contacted by Run.
func New(m engine.Module, o Options) (*Stats, error) {
	// A poller has nothing to drop; the counter exists because SPEC §2.2
	// lists metrics_dropped in every source's report.
	m.Stats.Counter("metrics_dropped")
	return &Stats{
		name:        m.Name,
		log:         m.Log,
		opts:        o,
		produced:    m.Stats.Counter("metrics_produced"),
		readErrors:  m.Stats.Counter("read_errors"),
		flushErrors: m.Stats.FlushErrors,
		unreadable:  map[string]uint64{},
		sizes:       map[string]size{},
		beat:        m.Beat("collect"),
	}, nil
}

// Run collects after the random startup delay of SPEC §2.1 (when
// randomize_startup is set and flush_interval is above 3 s), then every
// flush_interval, until ctx is cancelled, and then returns nil. A daemon
// that is down, failing or slow fails single collections (counted in
// flush_errors), never Run. Run returns an error only when proc_path is
// not a proc filesystem root.
func (s *Stats) Run(ctx context.Context, out engine.Emitter) error {
	proc, err := procfs.NewFS(s.opts.ProcPath)
	if err != nil {
		return fmt.Errorf("proc_path: %w", err)
	}
	// The client does no I/O until the first request; it negotiates the
	// API version then (and again after a failed attempt), so a daemon
	// older than the client (20.10 speaks 1.41) is understood.
	cli, err := client.NewClientWithOpts(
		client.WithHost("unix://"+s.opts.DockerSocket),
		client.WithAPIVersionNegotiation(),
	)
	if err != nil {
		return fmt.Errorf("docker_socket: %w", err)
	}
	defer cli.Close()

	if !s.opts.WaitStartup(ctx) {
		return nil
	}
	tick := time.NewTicker(engine.Seconds(s.opts.FlushInterval))
	defer tick.Stop()
	for {
		s.flush(ctx, cli, proc, out)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// inspectWorkers is how many inspect calls a collection has in flight at
// once: enough that one slow container does not hold up the others,
// few enough that a host with hundreds of containers does not flood the
// daemon.
const inspectWorkers = 4

// deadline bounds one call to the daemon: a hanging daemon must not delay
// the next collection, and socket_timeout may ask for less.
func (s *Stats) deadline() time.Duration {
	return engine.Seconds(min(s.opts.FlushInterval, s.opts.SocketTimeout))
}

// flush runs one collection and emits its metrics. A collection fails as a
// whole when the daemon cannot list the containers, or is gone while they
// are inspected; a container that cannot be inspected in time, and cgroup
// and proc files that cannot be read, only cost their own metrics
// (read_errors). The whole collection is bounded by flush_interval.
func (s *Stats) flush(ctx context.Context, cli *client.Client, proc procfs.FS, out engine.Emitter) {
	s.beat.Begin()
	defer s.beat.End()
	cctx, cancel := context.WithTimeout(ctx, engine.Seconds(s.opts.FlushInterval))
	defer cancel()
	s.generation++
	metrics, err := s.collect(cctx, cli, proc, time.Now())
	for k, gen := range s.unreadable {
		if gen != s.generation {
			delete(s.unreadable, k)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down, not failing
		}
		s.flushErrors.Inc()
		if !s.failing {
			s.failing = true
			s.log.Warn("collection failed, retrying every flush_interval", "socket", s.opts.DockerSocket, "err", err)
		}
		return
	}
	if s.failing {
		s.failing = false
		s.log.Info("collection recovered", "socket", s.opts.DockerSocket)
	}
	if len(metrics) == 0 {
		return
	}
	s.produced.Add(uint64(len(metrics)))
	out.Emit(&engine.Batch{Source: s.name, Metrics: metrics})
}

// inspected is the answer about one listed container.
type inspected struct {
	info    container.InspectResponse
	err     error
	size    size
	sizeErr error // of the size=1 call, when one was made
}

// collect lists and inspects the running containers and reads their usage.
func (s *Stats) collect(ctx context.Context, cli *client.Client, proc procfs.FS, now time.Time) ([]engine.Metric, error) {
	lctx, cancel := context.WithTimeout(ctx, s.deadline())
	list, err := cli.ContainerList(lctx, container.ListOptions{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	sizing := s.sized.IsZero() || now.Sub(s.sized) >= engine.Seconds(s.opts.FilesystemInterval)
	answers := s.inspectAll(ctx, cli, list, sizing)
	if sizing {
		s.sized = now
	}
	listed := make(map[string]bool, len(list))
	c := collection{s: s, proc: proc, layout: detectLayout(s.opts.CgroupPath), ts: now.UnixMilli()}
	for i, summary := range list {
		listed[summary.ID] = true
		a := &answers[i]
		if a.err != nil {
			if ctx.Err() != nil || client.IsErrConnectionFailed(a.err) {
				return nil, fmt.Errorf("inspect container %s: %w", shortID(summary.ID), a.err)
			}
			if errors.Is(a.err, context.DeadlineExceeded) {
				// Only this container's call was too slow: the others
				// keep their metrics.
				s.check("inspect "+shortID(summary.ID), a.err)
				continue
			}
			// The daemon answered, but not about this container: mostly
			// one removed since the list (a 404, which only containerd's
			// errdefs can tell apart, a module go.mod lists as indirect).
			// The container is skipped; churn is not worth a warning.
			s.log.Debug("skipping container the daemon cannot inspect", "id", shortID(summary.ID), "err", a.err)
			continue
		}
		s.check("inspect "+shortID(summary.ID), nil)
		info := &a.info
		if info.ContainerJSONBase == nil || info.State == nil || !info.State.Running || info.Config == nil {
			continue
		}
		if sizing && s.check("size of "+shortID(info.ID), a.sizeErr) {
			s.sizes[info.ID] = a.size
		}
		c.container(info)
	}
	for id := range s.sizes {
		if !listed[id] {
			delete(s.sizes, id)
		}
	}
	return c.metrics, nil
}

// inspectAll inspects the listed containers, inspectWorkers at a time,
// each call with its own deadline, and with sizing also asks for their
// sizes in a second call: a container whose layer takes long to walk
// must not cost its CPU and memory metrics. Answers are in list order.
func (s *Stats) inspectAll(ctx context.Context, cli *client.Client, list []container.Summary, sizing bool) []inspected {
	answers := make([]inspected, len(list))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(inspectWorkers, len(list)) {
		wg.Go(func() {
			for i := range next {
				s.inspect(ctx, cli, list[i].ID, sizing, &answers[i])
			}
		})
	}
	for i := range list {
		next <- i
	}
	close(next)
	wg.Wait()
	return answers
}

// inspect fills a with what the daemon says about container id. It runs
// on a worker goroutine: a panic costs this container's metrics only.
func (s *Stats) inspect(ctx context.Context, cli *client.Client, id string, sizing bool, a *inspected) {
	defer func() {
		if p := recover(); p != nil {
			a.err = fmt.Errorf("inspect panicked: %v", p)
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, s.deadline())
	a.info, a.err = cli.ContainerInspect(cctx, id)
	cancel()
	if a.err != nil || !sizing {
		return
	}
	// Size makes the daemon add up the container's writable layer: the
	// expensive call, hence filesystem_interval.
	cctx, cancel = context.WithTimeout(ctx, s.deadline())
	sized, _, err := cli.ContainerInspectWithRaw(cctx, id, true)
	cancel()
	switch {
	case err != nil:
		a.sizeErr = err
	case sized.ContainerJSONBase == nil || sized.SizeRootFs == nil || sized.SizeRw == nil:
		a.sizeErr = errors.New("no size in the answer")
	default:
		a.size = size{rootFS: *sized.SizeRootFs, rw: *sized.SizeRw}
	}
}

// collection holds the state of one collection.
type collection struct {
	s       *Stats
	proc    procfs.FS
	layout  layout
	ts      int64
	metrics []engine.Metric

	// The host's memory size and CPU count stand in for absent limits;
	// they are read at most once per collection, when first needed.
	memTotal, cpus         uint64
	memTotalRead, cpusRead bool
}

// emit appends a metric with the container's tags plus, unless name is
// empty, a name tag. Each metric gets its own copy of the tags: the
// router's relabel rules edit tag slices in place.
func (c *collection) emit(bucket string, tags []engine.Tag, name string, fields ...engine.Field) {
	own := slices.Clone(tags)
	if name != "" {
		own = withName(tags, name)
	}
	c.metrics = append(c.metrics, engine.Metric{Bucket: bucket, Fields: fields, Timestamp: c.ts, Tags: own})
}

func num(name string, v float64) engine.Field {
	return engine.Field{Name: name, Value: engine.Number(v)}
}

// container emits the metrics of one running container.
func (c *collection) container(info *container.InspectResponse) {
	tags := containerTags(info.Name, info.ID, info.Config.Labels, info.Config.Env, c.s.opts.EnvMapping)
	var parent string
	var limits container.Resources
	if info.HostConfig != nil {
		parent = info.HostConfig.CgroupParent
		limits = info.HostConfig.Resources
	}
	c.cpu(info.ID, parent, &limits, tags)
	c.memory(info.ID, parent, tags)
	c.interfaces(info.State.Pid, tags)
	// SizeRootFs is everything the container sees (image layers plus its
	// own changes), SizeRw what it wrote: its own share of the disk. The
	// last measurement is repeated until the next one, so that the series
	// does not go stale downstream between two.
	if sz, ok := c.s.sizes[info.ID]; ok {
		c.emit("docker_filesystem", tags, "", num("total_bytes", float64(sz.rootFS)), num("used_bytes", float64(sz.rw)))
	}
}

// cpu emits per-CPU usage (v1 only: v2 keeps no per-CPU counters) and a
// name=total metric with the summed usage and limit_ps, in both layouts.
func (c *collection) cpu(id, parent string, limits *container.Resources, tags []engine.Tag) {
	var total float64
	usageOK := false
	limit, limitOK := 0.0, false
	if c.layout.v2 {
		if dir, ok := c.dir("", id, parent); ok {
			if b, ok := c.read(filepath.Join(dir, "cpu.stat")); ok {
				usec, err := parseCPUStat(b)
				if c.s.check(filepath.Join(dir, "cpu.stat"), err) {
					total, usageOK = float64(usec)*1e3, true
				}
			}
			if b, ok := c.read(filepath.Join(dir, "cpu.max")); ok {
				l, err := parseCPUMax(b)
				limit, limitOK = l, c.s.check(filepath.Join(dir, "cpu.max"), err)
			}
		}
	} else {
		if dir, ok := c.dir("cpuacct", id, parent); ok {
			file := filepath.Join(dir, "cpuacct.usage_percpu")
			if b, ok := c.read(file); ok {
				percpu, err := parsePerCPU(b)
				if c.s.check(file, err) {
					for i, ns := range percpu {
						c.emit("docker_cpu", tags, "cpu"+strconv.Itoa(i), num("usage", float64(ns)))
						total += float64(ns)
					}
					usageOK = true
				}
			}
		}
		if dir, ok := c.dir("cpu", id, parent); ok {
			qf, pf := filepath.Join(dir, "cpu.cfs_quota_us"), filepath.Join(dir, "cpu.cfs_period_us")
			q, qok := c.read(qf)
			p, pok := c.read(pf)
			if qok && pok {
				l, err := parseCFS(q, p)
				limit, limitOK = l, c.s.check(qf, err)
			}
		}
	}
	if !limitOK {
		// The cgroup is what the kernel enforces; the daemon's record of
		// what was asked for is the next best thing.
		switch period := float64(limits.CPUPeriod); {
		case limits.NanoCPUs > 0:
			limit = float64(limits.NanoCPUs)
		case limits.CPUQuota > 0:
			if period <= 0 {
				period = 100000 // the kernel's default CFS period, in µs
			}
			limit = cpuLimit(float64(limits.CPUQuota), period)
		}
	}
	fields := make([]engine.Field, 0, 2)
	if usageOK {
		fields = append(fields, num("usage", total))
	}
	if limit == 0 {
		if n, ok := c.hostCPUs(); ok {
			limit = float64(n) * 1e9
		}
	}
	if limit > 0 {
		fields = append(fields, num("limit_ps", limit))
	}
	if len(fields) > 0 {
		c.emit("docker_cpu", tags, "total", fields...)
	}
}

// memory emits used_bytes and limit_bytes; a container without a limit,
// or with one above the host's memory, is limited by the host's memory.
func (c *collection) memory(id, parent string, tags []engine.Tag) {
	dir, ok := c.dir("memory", id, parent)
	if !ok {
		return
	}
	usedFile, limitFile := "memory.usage_in_bytes", "memory.limit_in_bytes"
	if c.layout.v2 {
		usedFile, limitFile = "memory.current", "memory.max"
	}
	fields := make([]engine.Field, 0, 2)
	if b, ok := c.read(filepath.Join(dir, usedFile)); ok {
		v, err := parseMemory(b)
		if c.s.check(filepath.Join(dir, usedFile), err) {
			fields = append(fields, num("used_bytes", float64(v)))
		}
	}
	if b, ok := c.read(filepath.Join(dir, limitFile)); ok {
		v, err := parseMemory(b)
		if c.s.check(filepath.Join(dir, limitFile), err) {
			if host, ok := c.hostMemory(); ok && (v == 0 || v > host) {
				v = host
			}
			if v > 0 {
				fields = append(fields, num("limit_bytes", float64(v)))
			}
		}
	}
	if len(fields) > 0 {
		c.emit("docker_memory", tags, "", fields...)
	}
}

// interfaces emits the counters of every interface in the network
// namespace of the container's main process.
func (c *collection) interfaces(pid int, tags []engine.Tag) {
	if pid <= 0 {
		return
	}
	p, err := c.proc.Proc(pid)
	file := filepath.Join(c.s.opts.ProcPath, strconv.Itoa(pid), "net", "dev")
	if !c.s.check(file, err) {
		return
	}
	dev, err := p.NetDev()
	if !c.s.check(file, err) {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(dev)) {
		d := dev[name]
		c.emit("docker_interface", tags, name,
			num("rx_bytes", float64(d.RxBytes)),
			num("rx_packets", float64(d.RxPackets)),
			num("rx_errors", float64(d.RxErrors)),
			num("rx_dropped", float64(d.RxDropped)),
			num("tx_bytes", float64(d.TxBytes)),
			num("tx_packets", float64(d.TxPackets)),
			num("tx_errors", float64(d.TxErrors)),
			num("tx_dropped", float64(d.TxDropped)),
		)
	}
}

// dir finds a container's cgroup directory, logging a miss once.
func (c *collection) dir(controller, id, parent string) (string, bool) {
	d, err := c.layout.dir(controller, id, parent)
	if c.layout.v2 {
		controller = "unified"
	}
	return d, c.s.check("cgroup "+controller+" "+id, err)
}

// read returns the contents of file, counting and logging a failure.
func (c *collection) read(file string) ([]byte, bool) {
	b, err := os.ReadFile(file)
	return b, c.s.check(file, err)
}

func (c *collection) hostMemory() (uint64, bool) {
	if !c.memTotalRead {
		c.memTotalRead = true
		mi, err := c.proc.Meminfo()
		if err == nil && mi.MemTotal == nil {
			err = errors.New("no MemTotal")
		}
		if c.s.check(filepath.Join(c.s.opts.ProcPath, "meminfo"), err) {
			c.memTotal = *mi.MemTotal * 1024
		}
	}
	return c.memTotal, c.memTotal > 0
}

func (c *collection) hostCPUs() (uint64, bool) {
	if !c.cpusRead {
		c.cpusRead = true
		st, err := c.proc.Stat()
		if c.s.check(filepath.Join(c.s.opts.ProcPath, "stat"), err) {
			c.cpus = uint64(len(st.CPU))
		}
	}
	return c.cpus, c.cpus > 0
}

// check reports whether err is nil. A failure is counted in read_errors
// and logged once until what (a file, a lookup or a call to the daemon
// about one container) succeeds again.
func (s *Stats) check(what string, err error) bool {
	if err == nil {
		if _, ok := s.unreadable[what]; ok {
			delete(s.unreadable, what)
			s.log.Info("reading again", "what", what)
		}
		return true
	}
	s.readErrors.Inc()
	if _, ok := s.unreadable[what]; !ok {
		s.log.Warn("skipping metrics that cannot be read", "what", what, "err", err)
	}
	s.unreadable[what] = s.generation
	return false
}
