package backendtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// ScrapeJob is one of Prometheus' scrape_configs: a target scraped every
// second at /metrics, over HTTPS and with basic auth when asked.
type ScrapeJob struct {
	Name   string // job_name, the job label; "target" when empty
	Target string // host:port
	Scheme string // "http" when empty, or "https"
	// CAFile verifies the target's certificate (tls_config.ca_file); ""
	// uses the system roots.
	CAFile string
	// Username and Password are sent with basic auth when Username is set.
	Username, Password string
}

// StartPrometheusJobs starts Prometheus scraping each of jobs every second.
// Job names must differ. As with StartPrometheus, the first scrape comes
// about 5 s after the start: use WaitFor for the first sample, and the up
// series of a job tells whether its scrapes succeed.
func StartPrometheusJobs(t testing.TB, jobs ...ScrapeJob) *Prometheus {
	t.Helper()
	return StartPrometheusFlags(t, nil, jobs...)
}

// StartPrometheusFlags is StartPrometheusJobs with extra command-line
// flags, such as --enable-feature=native-histograms.
func StartPrometheusFlags(t testing.TB, flags []string, jobs ...ScrapeJob) *Prometheus {
	t.Helper()
	bin := findBinary(t, "prometheus")
	dir := t.TempDir()
	port := FreePort(t)
	config := filepath.Join(dir, "prometheus.yml")
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for _, j := range jobs {
		name, scheme := j.Name, j.Scheme
		if name == "" {
			name = "target"
		}
		if scheme == "" {
			scheme = "http"
		}
		// %q quotes are valid YAML double-quoted scalars for these values.
		fmt.Fprintf(&b, "  - job_name: %q\n    scheme: %q\n    metrics_path: /metrics\n", name, scheme)
		if j.CAFile != "" {
			fmt.Fprintf(&b, "    tls_config:\n      ca_file: %q\n", j.CAFile)
		}
		if j.Username != "" {
			fmt.Fprintf(&b, "    basic_auth:\n      username: %q\n      password: %q\n", j.Username, j.Password)
		}
		fmt.Fprintf(&b, "    static_configs:\n      - targets: [%q]\n", j.Target)
	}
	writeFile(t, config, b.String())
	p := &Prometheus{URL: "http://" + hostPort(port)}
	args := append([]string{
		"--config.file=" + config,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + hostPort(port),
		"--log.level=warn",
	}, flags...)
	proc := startProcess(t, "prometheus", bin, nil, args...)
	proc.waitReady(t, httpReady(p.URL+"/-/ready", 200))
	return p
}
