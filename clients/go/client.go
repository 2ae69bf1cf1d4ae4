package datacat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

// Version is this client's version, sent in its User-Agent.
const Version = "0.1.0"

const (
	// defaultTimeout bounds each request of a Client (the original client's value).
	defaultTimeout = 30 * time.Second
	// maxAnswer bounds how much of an error answer is read.
	maxAnswer = 64 << 10
)

// Client makes plain, synchronous calls of the DataCat REST API. Each call is one
// request and returns an error wrapping what went wrong (an *APIError for an answer
// that is not a 2xx). A Client is safe for concurrent use.
type Client struct {
	// BaseURL is the server's address, such as "http://127.0.0.1:8080".
	BaseURL string
	// HTTPClient sends the requests; its Timeout bounds each call (30 s by default).
	HTTPClient *http.Client
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
}

// ClientOption changes a Client that NewClient builds.
type ClientOption func(*Client)

// WithToken sets the bearer token (instead of $DATACAT_TOKEN).
func WithToken(token string) ClientOption {
	return func(c *Client) { c.Token = token }
}

// WithHTTPClient sends the requests with hc (its transport, timeout, TLS settings).
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.HTTPClient = hc }
}

// WithTimeout bounds each request of the Client's own HTTP client.
func WithTimeout(timeout time.Duration) ClientOption {
	return func(c *Client) { c.HTTPClient = &http.Client{Timeout: timeout} }
}

// NewClient returns a Client of the server at baseURL; an empty baseURL means
// $DATACAT_URL, else DefaultURL. The token is $DATACAT_TOKEN unless WithToken says.
func NewClient(baseURL string, options ...ClientOption) *Client {
	c := &Client{
		BaseURL:    resolveURL(baseURL),
		HTTPClient: &http.Client{Timeout: defaultTimeout},
		Token:      os.Getenv("DATACAT_TOKEN"),
	}
	for _, option := range options {
		option(c)
	}
	return c
}

func sessionPath(sessionID, tail string) string {
	return "/api/sessions/" + url.PathEscape(sessionID) + tail
}

// newRequest builds a request of the API with the client's headers.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "datacat-go/"+Version)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient == nil {
		return http.DefaultClient
	}
	return c.HTTPClient
}

// send makes one request; a non-2xx answer is an *APIError. On success, the caller
// reads and closes the body.
func (c *Client) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		return nil, newAPIError(method, path, resp, answer)
	}
	return resp, nil
}

// call sends in (JSON, unless nil) and decodes the answer into out (unless nil).
func (c *Client) call(ctx context.Context, what, method, path string, in, out interface{}) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("datacat: %s: %w", what, err)
		}
	}
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return fmt.Errorf("datacat: %s: %w", what, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("datacat: %s: reading the answer: %w", what, err)
		}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)) // keep the connection
	return nil
}

// CreateSession starts a session (POST /api/sessions) and returns its id.
func (c *Client) CreateSession() (string, error) {
	return c.CreateSessionContext(context.Background())
}

// CreateSessionContext is CreateSession with a context.
func (c *Client) CreateSessionContext(ctx context.Context) (string, error) {
	var answer struct {
		SessionID string `json:"session_id"`
	}
	if err := c.call(ctx, "create session", http.MethodPost, "/api/sessions", nil, &answer); err != nil {
		return "", err
	}
	if answer.SessionID == "" {
		return "", fmt.Errorf("datacat: create session: no session_id in the answer")
	}
	return answer.SessionID, nil
}

// GetSession reads a session with its state, events and metrics.
func (c *Client) GetSession(sessionID string) (*Session, error) {
	return c.GetSessionContext(context.Background(), sessionID)
}

// GetSessionContext is GetSession with a context.
func (c *Client) GetSessionContext(ctx context.Context, sessionID string) (*Session, error) {
	var session Session
	if err := c.call(ctx, "get session", http.MethodGet, sessionPath(sessionID, ""), nil, &session); err != nil {
		return nil, err
	}
	return &session, nil
}

// UpdateState deep-merges state into the session's state: an object merges key by
// key, recursively; any other value replaces.
func (c *Client) UpdateState(sessionID string, state map[string]interface{}) error {
	return c.UpdateStateContext(context.Background(), sessionID, state)
}

// UpdateStateContext is UpdateState with a context.
func (c *Client) UpdateStateContext(ctx context.Context, sessionID string, state map[string]interface{}) error {
	if state == nil {
		state = map[string]interface{}{}
	}
	return c.call(ctx, "update state", http.MethodPost, sessionPath(sessionID, "/state"), state, nil)
}

// LogEvent logs an event with optional data.
func (c *Client) LogEvent(sessionID, name string, data map[string]interface{}) error {
	return c.LogEventContext(context.Background(), sessionID, name, data)
}

// LogEventContext is LogEvent with a context.
func (c *Client) LogEventContext(ctx context.Context, sessionID, name string, data map[string]interface{}) error {
	body := struct {
		Name string                 `json:"name"`
		Data map[string]interface{} `json:"data"`
	}{name, data}
	return c.call(ctx, "log event", http.MethodPost, sessionPath(sessionID, "/events"), body, nil)
}

// metricBody is the body of POST /api/sessions/{id}/metrics.
type metricBody struct {
	Name  string   `json:"name"`
	Value float64  `json:"value"`
	Tags  []string `json:"tags"`
	Unit  string   `json:"unit,omitempty"`
	Kind  string   `json:"kind,omitempty"`
}

// LogMetric logs a metric value with optional tags (such as "host=a").
func (c *Client) LogMetric(sessionID, name string, value float64, tags []string) error {
	return c.LogMetricWithContext(context.Background(), sessionID, name, value, MetricOptions{Tags: tags})
}

// LogMetricContext is LogMetric with a context.
func (c *Client) LogMetricContext(ctx context.Context, sessionID, name string, value float64, tags []string) error {
	return c.LogMetricWithContext(ctx, sessionID, name, value, MetricOptions{Tags: tags})
}

// LogMetricWithContext logs a metric value with its tags, unit and kind.
func (c *Client) LogMetricWithContext(ctx context.Context, sessionID, name string, value float64, opts MetricOptions) error {
	tags := opts.Tags
	if tags == nil {
		tags = []string{}
	}
	body := metricBody{Name: name, Value: value, Tags: tags, Unit: opts.Unit, Kind: opts.Kind}
	return c.call(ctx, "log metric", http.MethodPost, sessionPath(sessionID, "/metrics"), body, nil)
}

// EndSession ends a session. Records sent later are still stored; it stays ended.
func (c *Client) EndSession(sessionID string) error {
	return c.EndSessionContext(context.Background(), sessionID)
}

// EndSessionContext is EndSession with a context.
func (c *Client) EndSessionContext(ctx context.Context, sessionID string) error {
	return c.call(ctx, "end session", http.MethodPost, sessionPath(sessionID, "/end"), nil, nil)
}

// GetAllSessions reads every session (GET /api/data/sessions), oldest first.
func (c *Client) GetAllSessions() ([]*Session, error) {
	return c.GetAllSessionsContext(context.Background())
}

// GetAllSessionsContext is GetAllSessions with a context.
func (c *Client) GetAllSessionsContext(ctx context.Context) ([]*Session, error) {
	var sessions []*Session
	if err := c.call(ctx, "get all sessions", http.MethodGet, "/api/data/sessions", nil, &sessions); err != nil {
		return nil, err
	}
	return sessions, nil
}
