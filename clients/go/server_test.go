package datacat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireRecord is a record as it arrived at the fake server.
type wireRecord map[string]interface{}

func (r wireRecord) kind() string     { s, _ := r["kind"].(string); return s }
func (r wireRecord) name() string     { s, _ := r["name"].(string); return s }
func (r wireRecord) session() string  { s, _ := r["session_id"].(string); return s }
func (r wireRecord) data() wireRecord { m, _ := r["data"].(map[string]interface{}); return m }
func (r wireRecord) number(key string) float64 {
	f, _ := r[key].(float64)
	return f
}

// seq is the record's sequence number (microseconds since 1970 are below 2^53:
// a float64 holds them exactly).
func (r wireRecord) seq() int64 {
	return int64(r.number("seq"))
}

// answer is what the fake server answers to one ingest request: status 0 stores the
// batch and acknowledges it; store stores it before answering with status anyway (a
// lost acknowledgement).
type answer struct {
	status int
	header map[string]string
	store  bool
	hold   <-chan struct{} // wait for this before answering
}

// ingestServer is POST /api/ingest as the real server does it, in memory: each
// (session_id, seq) stored once, a batch with a record of an unknown session
// refused with 404, an invalid record refusing the whole batch with 400.
type ingestServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests []*http.Request
	batches  [][]wireRecord // every batch posted, stored or not
	stored   []wireRecord   // records stored, once each, in arrival order
	seen     map[string]bool
	known    map[string]bool
	script   func(n int, records []wireRecord) answer // nil: store and acknowledge
}

func newIngestServer(t *testing.T) *ingestServer {
	t.Helper()
	s := &ingestServer{t: t, seen: map[string]bool{}, known: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *ingestServer) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/ingest" {
		http.Error(w, `{"detail": "not here"}`, http.StatusNotFound)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	var body struct {
		Records []wireRecord `json:"records"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.t.Errorf("a batch that is not JSON: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	n := len(s.batches)
	s.requests = append(s.requests, r)
	s.batches = append(s.batches, body.Records)
	script := s.script
	s.mu.Unlock()
	reply := answer{}
	if script != nil {
		reply = script(n, body.Records)
	}
	if reply.hold != nil {
		<-reply.hold
	}
	if reply.status != 0 && !reply.store {
		for key, value := range reply.header {
			w.Header().Set(key, value)
		}
		w.WriteHeader(reply.status)
		fmt.Fprintf(w, `{"status_code": %d, "detail": "scripted %d"}`, reply.status, reply.status)
		return
	}
	status, detail, accepted, duplicates := s.store(body.Records)
	if reply.status != 0 {
		for key, value := range reply.header {
			w.Header().Set(key, value)
		}
		w.WriteHeader(reply.status)
		return
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status_code": %d, "detail": %q}`, status, detail)
		return
	}
	fmt.Fprintf(w, `{"accepted": %d, "duplicates": %d}`, accepted, duplicates)
}

// store checks and stores a batch as the real server does: all or nothing.
func (s *ingestServer) store(records []wireRecord) (status int, detail string, accepted, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, rec := range records {
		switch {
		case rec.kind() == "event" && rec.name() == "bad":
			return http.StatusBadRequest, fmt.Sprintf("$.records[%d].name: a bad name", i), 0, 0
		case rec.kind() != "session_start" && !s.known[rec.session()] && !startsIn(records, rec.session()):
			return http.StatusNotFound, "unknown session: " + rec.session(), 0, 0
		}
	}
	for _, rec := range records {
		if rec.kind() == "session_start" {
			s.known[rec.session()] = true
		}
		key := fmt.Sprintf("%s/%d", rec.session(), rec.seq())
		if s.seen[key] {
			duplicates++
			continue
		}
		s.seen[key] = true
		s.stored = append(s.stored, rec)
		accepted++
	}
	return http.StatusOK, "", accepted, duplicates
}

func startsIn(records []wireRecord, session string) bool {
	for _, rec := range records {
		if rec.kind() == "session_start" && rec.session() == session {
			return true
		}
	}
	return false
}

// forget drops everything stored: a server whose database was replaced.
func (s *ingestServer) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen, s.known, s.stored = map[string]bool{}, map[string]bool{}, nil
}

func (s *ingestServer) setScript(script func(n int, records []wireRecord) answer) {
	s.mu.Lock()
	s.script = script
	s.mu.Unlock()
}

// records is what was stored, of the given kind ("" for all).
func (s *ingestServer) records(kind string) []wireRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []wireRecord
	for _, rec := range s.stored {
		if kind == "" || rec.kind() == kind {
			out = append(out, rec)
		}
	}
	return out
}

// events is the stored events called name.
func (s *ingestServer) events(name string) []wireRecord {
	var out []wireRecord
	for _, rec := range s.records("event") {
		if rec.name() == name {
			out = append(out, rec)
		}
	}
	return out
}

func (s *ingestServer) posted() [][]wireRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]wireRecord(nil), s.batches...)
}

func (s *ingestServer) client() *Client {
	return NewClient(s.srv.URL, WithToken("t0ken"))
}

// start opens a LiveSession on the fake server with quick test settings.
func (s *ingestServer) start(t *testing.T, opts SessionOptions) *LiveSession {
	t.Helper()
	if opts.ErrorLog == nil {
		opts.ErrorLog = log.New(&lockedBuffer{}, "", 0)
	}
	if opts.backoff == 0 {
		opts.backoff = 5 * time.Millisecond
	}
	if opts.offlineFor == 0 {
		opts.offlineFor = 20 * time.Millisecond
	}
	if opts.Linger == 0 {
		opts.Linger = 5 * time.Millisecond
	}
	session, err := s.client().StartSession(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = session.Close(timeout(t, time.Second)) })
	return session
}

// lockedBuffer is a log destination that goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// names lists the kind (and name) of records, for messages.
func names(records []wireRecord) string {
	parts := make([]string, len(records))
	for i, rec := range records {
		parts[i] = rec.kind()
		if rec.name() != "" {
			parts[i] += ":" + rec.name()
		}
	}
	return strings.Join(parts, " ")
}

// timeout is a context that ends after d (and with the test).
func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
