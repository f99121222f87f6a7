package docker

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// apiVersion is what the fake daemon speaks: the newest version of Docker
// 20.10, the daemon on the machines the real-daemon test runs on. Requests
// for any other version are refused, so the tests prove that the client
// negotiated.
const apiVersion = "1.41"

// fakeDaemon serves the three Engine API calls docker_stats makes, for
// what a real daemon on this machine cannot show: cgroup v2 and systemd
// driver layouts, errors, and a daemon that hangs. The zero value answers
// with no containers.
type fakeDaemon struct {
	mu         sync.Mutex
	containers []container.InspectResponse // listed and inspectable, in order
	gone       []string                    // listed, then 404 on inspect
	mode       string                      // "" answers, "500" fails, "hang" never answers
	hang       map[string]bool             // containers whose inspect never answers
	unsized    int                         // inspects without ?size=1
	sized      int                         // inspects with ?size=1
	inspects   int                         // inspects received
}

func (d *fakeDaemon) set(f func(d *fakeDaemon)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// serve listens on the unix socket sock until the test ends.
func (d *fakeDaemon) serve(t *testing.T, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", apiVersion)
		_, _ = w.Write([]byte("OK")) // a failed answer fails the client
	})
	mux.HandleFunc("GET /{version}/containers/json", d.list)
	mux.HandleFunc("GET /{version}/containers/{id}/json", d.inspect)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }() // returns ErrServerClosed at cleanup
	// Close, not Shutdown: a hanging handler returns when its connection
	// is closed.
	t.Cleanup(func() { srv.Close() })
}

// answer applies the daemon's mode and version check; it reports whether
// the handler should go on answering.
func (d *fakeDaemon) answer(w http.ResponseWriter, r *http.Request) bool {
	if v := r.PathValue("version"); v != "v"+apiVersion {
		apiError(w, http.StatusBadRequest, "unexpected API version "+v)
		return false
	}
	d.mu.Lock()
	mode := d.mode
	d.mu.Unlock()
	switch mode {
	case "500":
		apiError(w, http.StatusInternalServerError, "fake daemon failure")
		return false
	case "hang":
		<-r.Context().Done()
		return false
	}
	return true
}

func (d *fakeDaemon) list(w http.ResponseWriter, r *http.Request) {
	if !d.answer(w, r) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	list := []container.Summary{}
	for _, c := range d.containers {
		list = append(list, container.Summary{ID: c.ID, Names: []string{c.Name}, State: "running"})
	}
	for _, id := range d.gone {
		list = append(list, container.Summary{ID: id, Names: []string{"/gone"}, State: "running"})
	}
	writeJSON(w, list)
}

func (d *fakeDaemon) inspect(w http.ResponseWriter, r *http.Request) {
	if !d.answer(w, r) {
		return
	}
	d.mu.Lock()
	d.inspects++
	hang := d.hang[r.PathValue("id")]
	d.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		if c.ID != r.PathValue("id") {
			continue
		}
		// The daemon adds up sizes only when asked to.
		if r.URL.Query().Get("size") != "1" {
			d.unsized++
			base := *c.ContainerJSONBase
			base.SizeRw, base.SizeRootFs = nil, nil
			c.ContainerJSONBase = &base
		} else {
			d.sized++
		}
		writeJSON(w, c)
		return
	}
	apiError(w, http.StatusNotFound, "No such container: "+r.PathValue("id"))
}

// writeJSON answers v as JSON. A failed write fails the client, which is
// what the test sees.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// apiError answers like the daemon does: a JSON message and the status.
func apiError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
