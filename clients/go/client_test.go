package datacat

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// seedRequest is a request as the fake seed server received it.
type seedRequest struct {
	method, path, contentType, authorization, userAgent string
	body                                                map[string]interface{}
	rawBody                                             string
}

// seedServer answers the seed API's paths with canned bodies and keeps what it got.
type seedServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	got      []seedRequest
	answers  map[string]string // "GET /api/..." → body
	statuses map[string]int
}

func newSeedServer(t *testing.T) *seedServer {
	s := &seedServer{answers: map[string]string{}, statuses: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := seedRequest{
			method: r.Method, path: r.URL.RequestURI(), contentType: r.Header.Get("Content-Type"),
			authorization: r.Header.Get("Authorization"), userAgent: r.Header.Get("User-Agent"), rawBody: string(raw),
		}
		_ = json.Unmarshal(raw, &req.body)
		s.mu.Lock()
		s.got = append(s.got, req)
		key := r.Method + " " + r.URL.Path
		status, answer := s.statuses[key], s.answers[key]
		s.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
		}
		if answer == "" {
			answer = `{"status": "ok"}`
		}
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *seedServer) last() seedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[len(s.got)-1]
}

const sessionJSON = `{
  "id": "5f8f1b8e-1f0e-4c4e-9a51-3d5c2f8a9b10", "name": "app", "product": "shop",
  "version": "1.2", "labels": {"env": "ci"},
  "created_at": "2025-11-18T19:59:15.123456Z", "updated_at": "2025-11-18T19:59:16.000001Z",
  "ended_at": null, "active": true, "status": "running",
  "state": {"window": {"open": ["cart"]}}, "in_progress": {},
  "events": [
    {"timestamp": "2025-11-18T19:59:15.200000Z", "name": "exception",
     "data": {"type": "ValueError", "message": "bad", "traceback": ["line\n"]}},
    {"timestamp": "2025-11-18T19:59:15.300000Z", "name": "count", "data": 5},
    {"timestamp": "2025-11-18T19:59:15.400000Z", "name": "nothing", "data": null}
  ],
  "metrics": [{"timestamp": "2025-11-18T19:59:15.500000Z", "name": "m", "value": 1.5, "tags": ["t"]}]
}`

func TestTheSeedCallsSendWhatTheOriginalClientSent(t *testing.T) {
	server := newSeedServer(t)
	server.answers["POST /api/sessions"] = `{"session_id": "abc"}`
	c := NewClient(server.srv.URL+"/", WithToken("secret"))
	if c.BaseURL != server.srv.URL {
		t.Fatalf("BaseURL %q", c.BaseURL)
	}

	id, err := c.CreateSession()
	if err != nil || id != "abc" {
		t.Fatalf("CreateSession: %q %v", id, err)
	}
	if got := server.last(); got.method != "POST" || got.path != "/api/sessions" || got.rawBody != "" ||
		got.authorization != "Bearer secret" || got.userAgent != "datacat-go/"+Version {
		t.Fatalf("request %+v", got)
	}

	if err := c.UpdateState("s 1", map[string]interface{}{"key": "value"}); err != nil {
		t.Fatal(err)
	}
	if got := server.last(); got.path != "/api/sessions/s%201/state" || got.body["key"] != "value" || got.contentType != "application/json" {
		t.Fatalf("request %+v", got)
	}
	if err := c.UpdateState("s", nil); err != nil || server.last().rawBody != "{}" {
		t.Fatalf("a nil state: %v %q", err, server.last().rawBody)
	}

	if err := c.LogEvent("s", "test_event", map[string]interface{}{"data": "test"}); err != nil {
		t.Fatal(err)
	}
	if got := server.last(); got.path != "/api/sessions/s/events" || got.body["name"] != "test_event" ||
		got.body["data"].(map[string]interface{})["data"] != "test" {
		t.Fatalf("request %+v", got)
	}

	if err := c.LogMetric("s", "test_metric", 42.5, []string{"tag1"}); err != nil {
		t.Fatal(err)
	}
	if got := server.last(); got.path != "/api/sessions/s/metrics" || got.rawBody != `{"name":"test_metric","value":42.5,"tags":["tag1"]}` {
		t.Fatalf("request %+v", got)
	}
	if err := c.LogMetricContext(context.Background(), "s", "m", 0, nil); err != nil || server.last().rawBody != `{"name":"m","value":0,"tags":[]}` {
		t.Fatalf("no tags: %v %q", err, server.last().rawBody)
	}
	opts := MetricOptions{Tags: []string{"a"}, Unit: "ms", Kind: "counter"}
	if err := c.LogMetricWithContext(context.Background(), "s", "m", 3, opts); err != nil ||
		server.last().rawBody != `{"name":"m","value":3,"tags":["a"],"unit":"ms","kind":"counter"}` {
		t.Fatalf("unit and kind: %v %q", err, server.last().rawBody)
	}

	if err := c.EndSession("s"); err != nil {
		t.Fatal(err)
	}
	if got := server.last(); got.method != "POST" || got.path != "/api/sessions/s/end" {
		t.Fatalf("request %+v", got)
	}
}

func TestGetSessionReadsTheServersAnswer(t *testing.T) {
	server := newSeedServer(t)
	server.answers["GET /api/sessions/5f8f1b8e-1f0e-4c4e-9a51-3d5c2f8a9b10"] = sessionJSON
	server.answers["GET /api/data/sessions"] = "[" + sessionJSON + "]"
	c := NewClient(server.srv.URL)

	s, err := c.GetSession("5f8f1b8e-1f0e-4c4e-9a51-3d5c2f8a9b10")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "5f8f1b8e-1f0e-4c4e-9a51-3d5c2f8a9b10" || !s.Active || s.EndedAt != nil || s.Status != "running" ||
		s.Product != "shop" || s.Labels["env"] != "ci" {
		t.Fatalf("session %+v", s)
	}
	if want := time.Date(2025, 11, 18, 19, 59, 15, 123456000, time.UTC); !s.CreatedAt.Equal(want) {
		t.Fatalf("created_at %v", s.CreatedAt)
	}
	if open := s.State["window"].(map[string]interface{})["open"]; !reflect.DeepEqual(open, []interface{}{"cart"}) {
		t.Fatalf("state %v", s.State)
	}
	// Data that is not an object (another client may log a number) is in RawData.
	if e := s.Events[0]; e.Data["type"] != "ValueError" || string(e.RawData) == "" {
		t.Fatalf("event %+v", e)
	}
	if e := s.Events[1]; e.Data != nil || string(e.RawData) != "5" {
		t.Fatalf("event %+v", e)
	}
	if e := s.Events[2]; e.Data != nil || string(e.RawData) != "null" {
		t.Fatalf("event %+v", e)
	}
	if m := s.Metrics[0]; m.Value != 1.5 || m.Tags[0] != "t" || m.Name != "m" {
		t.Fatalf("metric %+v", m)
	}

	all, err := c.GetAllSessions()
	if err != nil || len(all) != 1 || all[0].ID != s.ID {
		t.Fatalf("GetAllSessions: %v %v", all, err)
	}
	if got := server.last(); got.method != "GET" || got.path != "/api/data/sessions" {
		t.Fatalf("request %+v", got)
	}
}

func TestEventsWriteBackWhatWasRead(t *testing.T) {
	var events []Event
	in := `[{"timestamp":"2025-11-18T19:59:15Z","name":"a","data":{"k":1}},` +
		`{"timestamp":"2025-11-18T19:59:15Z","name":"b","data":[1,2]},` +
		`{"timestamp":"2025-11-18T19:59:15Z","name":"c","data":null}]`
	if err := json.Unmarshal([]byte(in), &events); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Fatalf("\n%s\n%s", out, in)
	}
	made, _ := json.Marshal(Event{Name: "new", Data: map[string]interface{}{"x": true}})
	if !strings.Contains(string(made), `"data":{"x":true}`) {
		t.Fatalf("%s", made)
	}
	if err := json.Unmarshal([]byte(`{"name": 5}`), &Event{}); err == nil {
		t.Fatal("a bad event was read")
	}
	if err := json.Unmarshal([]byte(`{"data": {"k": }}`), &Event{}); err == nil {
		t.Fatal("bad data was read")
	}
	if _, err := json.Marshal(Event{Data: map[string]interface{}{"c": make(chan int)}}); err == nil {
		t.Fatal("unencodable data was written")
	}
}

func TestErrorsSayWhatWasAskedAndWhatTheServerSaid(t *testing.T) {
	server := newSeedServer(t)
	server.statuses["GET /api/sessions/gone"] = 404
	server.answers["GET /api/sessions/gone"] = `{"status_code": 404, "detail": "unknown session: gone"}`
	server.statuses["POST /api/sessions/s/metrics"] = 400
	server.answers["POST /api/sessions/s/metrics"] = `{"status_code": 400, "detail": ["a", "list"]}`
	server.statuses["POST /api/sessions/s/end"] = 503
	server.answers["POST /api/sessions/s/end"] = "<html>Service Unavailable</html>"
	server.answers["POST /api/sessions"] = `{"other": 1}`
	server.answers["GET /api/data/sessions"] = `{"not": "a list"}`
	c := NewClient(server.srv.URL)

	_, err := c.GetSession("gone")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, ErrNotFound) || apiErr.StatusCode != 404 || apiErr.Detail != "unknown session: gone" {
		t.Fatalf("GetSession: %v", err)
	}
	if err.Error() != "datacat: get session: datacat: GET /api/sessions/gone: HTTP 404: unknown session: gone" {
		t.Fatalf("message %q", err)
	}
	err = c.LogMetric("s", "m", 1, nil)
	if !errors.As(err, &apiErr) || apiErr.Detail != `["a","list"]` && apiErr.Detail != `["a", "list"]` || errors.Is(err, ErrNotFound) {
		t.Fatalf("LogMetric: %v", err)
	}
	if err := c.EndSession("s"); !errors.As(err, &apiErr) || apiErr.Detail != "<html>Service Unavailable</html>" || !apiErr.retryable() {
		t.Fatalf("EndSession: %v", err)
	}
	if _, err := c.CreateSession(); err == nil || !strings.Contains(err.Error(), "no session_id") {
		t.Fatalf("CreateSession: %v", err)
	}
	if _, err := c.GetAllSessions(); err == nil || !strings.Contains(err.Error(), "reading the answer") {
		t.Fatalf("GetAllSessions: %v", err)
	}
	if err := c.LogEvent("s", "e", map[string]interface{}{"c": make(chan int)}); err == nil || !strings.Contains(err.Error(), "log event") {
		t.Fatalf("LogEvent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.CreateSessionContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled call: %v", err)
	}
	if err := NewClient("http://bad host").EndSession("s"); err == nil {
		t.Fatal("a bad URL")
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	if _, err := NewClient(closed.URL).GetAllSessions(); err == nil || !strings.Contains(err.Error(), "get all sessions") {
		t.Fatalf("nothing listens: %v", err)
	}
}

func TestClientOptionsAndTheEnvironment(t *testing.T) {
	t.Setenv("DATACAT_URL", "")
	t.Setenv("DATACAT_TOKEN", "")
	c := NewClient("")
	if c.BaseURL != DefaultURL || c.Token != "" || c.HTTPClient.Timeout != 30*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	t.Setenv("DATACAT_URL", "http://datacat.example:9000/")
	t.Setenv("DATACAT_TOKEN", "env-token")
	c = NewClient("")
	if c.BaseURL != "http://datacat.example:9000" || c.Token != "env-token" {
		t.Fatalf("from the environment %+v", c)
	}
	if c := NewClient("http://x", WithToken("mine")); c.Token != "mine" || c.BaseURL != "http://x" {
		t.Fatalf("options win %+v", c)
	}
	hc := &http.Client{}
	if c := NewClient("http://x", WithHTTPClient(hc)); c.HTTPClient != hc {
		t.Fatal("WithHTTPClient")
	}
	if c := NewClient("http://x", WithTimeout(time.Second)); c.HTTPClient.Timeout != time.Second {
		t.Fatal("WithTimeout")
	}

	server := newSeedServer(t)
	bare := &Client{BaseURL: server.srv.URL} // no HTTPClient: http.DefaultClient
	if err := bare.EndSession("s"); err != nil || server.last().authorization != "" {
		t.Fatalf("a bare Client: %v %+v", err, server.last())
	}
}

func TestRetryAfterValues(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for value, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		" 0.5 ":                         500 * time.Millisecond,
		"Wed, 01 Jan 2025 12:00:10 GMT": 10 * time.Second,
		"Wed, 01 Jan 2025 11:00:00 GMT": 0,
	} {
		if got, ok := parseRetryAfter(value, now); !ok || got != want {
			t.Errorf("%q: %v %v", value, got, ok)
		}
	}
	for _, value := range []string{"", "-1", "NaN", "soon", "1e9"} {
		if got, ok := parseRetryAfter(value, now); ok {
			t.Errorf("%q: %v", value, got)
		}
	}
}

// The exported API of the original Go client (package client), kept: each line
// fails to compile if a signature changes.
var (
	_ func(string, ...ClientOption) *Client                       = NewClient
	_ func(*Client) (string, error)                               = (*Client).CreateSession
	_ func(*Client, string) (*Session, error)                     = (*Client).GetSession
	_ func(*Client, string, map[string]interface{}) error         = (*Client).UpdateState
	_ func(*Client, string, string, map[string]interface{}) error = (*Client).LogEvent
	_ func(*Client, string, string, float64, []string) error      = (*Client).LogMetric
	_ func(*Client, string) error                                 = (*Client).EndSession
	_ func(*Client) ([]*Session, error)                           = (*Client).GetAllSessions
	_ *http.Client                                                = (&Client{}).HTTPClient
	_ string                                                      = (&Client{}).BaseURL
)

func TestTheOriginalTypesKeepTheirFieldsAndJSONTags(t *testing.T) {
	want := map[reflect.Type][]string{
		reflect.TypeOf(Session{}): {
			"ID string json:\"id\"", "CreatedAt time.Time json:\"created_at\"",
			"UpdatedAt time.Time json:\"updated_at\"", "EndedAt *time.Time json:\"ended_at,omitempty\"",
			"Active bool json:\"active\"", "State map[string]interface {} json:\"state\"",
			"Events []datacat.Event json:\"events\"", "Metrics []datacat.Metric json:\"metrics\"",
		},
		reflect.TypeOf(Event{}): {
			"Timestamp time.Time json:\"timestamp\"", "Name string json:\"name\"",
			"Data map[string]interface {} json:\"data\"",
		},
		reflect.TypeOf(Metric{}): {
			"Timestamp time.Time json:\"timestamp\"", "Name string json:\"name\"",
			"Value float64 json:\"value\"", "Tags []string json:\"tags,omitempty\"",
		},
	}
	for typ, fields := range want {
		for i, field := range fields {
			f := typ.Field(i)
			if got := f.Name + " " + f.Type.String() + " json:\"" + f.Tag.Get("json") + "\""; got != field {
				t.Errorf("%s field %d: %s, want %s", typ, i, got, field)
			}
		}
	}
}
