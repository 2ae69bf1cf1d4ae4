package datacat

import (
	"context"
	"fmt"
	"log"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of SessionOptions.
const (
	DefaultQueueSize         = 10000
	DefaultBatchSize         = 1000
	DefaultLinger            = 50 * time.Millisecond
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultFlushTimeout      = 5 * time.Second
	DefaultMaxAttempts       = 3
)

// SessionOptions describe a LiveSession; every field is optional.
type SessionOptions struct {
	// ID is the session's UUID; empty means a new random one. Two LiveSessions on
	// one id (two processes) do not collide: their sequence numbers differ.
	ID string
	// Name, Product, Version and Labels describe the session on the server.
	Name    string
	Product string            // see Name
	Version string            // see Name
	Labels  map[string]string // see Name
	// State is the session's first state.
	State map[string]interface{}

	// HeartbeatInterval is how often the session tells the server it is alive
	// (DefaultHeartbeatInterval when zero, none when negative). A session silent
	// for several intervals without ending is shown as crashed.
	HeartbeatInterval time.Duration
	// QueueSize bounds the records waiting to be sent (DefaultQueueSize when zero);
	// past it, logging calls drop their record and count it. As many more are
	// kept while the server does not answer.
	QueueSize int
	// BatchSize is the most records sent in one request (DefaultBatchSize).
	BatchSize int
	// Linger is how long a batch waits for more records (DefaultLinger).
	Linger time.Duration
	// MaxAttempts is how many times a batch is sent before the server counts as
	// down (DefaultMaxAttempts).
	MaxAttempts int
	// RequestTimeout bounds each request (DefaultRequestTimeout).
	RequestTimeout time.Duration
	// FlushTimeout bounds Flush and Close when their context has no deadline, and
	// the flush of Recover (DefaultFlushTimeout).
	FlushTimeout time.Duration
	// ErrorLog receives the client's few warnings (the server is down, records
	// dropped: once each); nil means the log package's standard logger.
	ErrorLog *log.Logger

	// For tests: the first wait between attempts, and the first offline period.
	backoff, offlineFor time.Duration
}

// Stats are a LiveSession's counters.
type Stats struct {
	// Submitted counts records logged (the session's start and end included).
	Submitted int64
	// Sent counts records the server stored; Duplicates those it already had (the
	// second copy of a batch sent again after a lost answer).
	Sent       int64
	Duplicates int64 // see Sent
	// Dropped counts records given up: the queue was full, the server stayed down
	// too long, it refused them, or they were invalid (an event without a name, a
	// metric that is not a finite number).
	Dropped int64
	// Batches counts requests the server took; Retries the requests sent again.
	Batches int64
	Retries int64 // see Batches
	// LastError says why a record was last dropped or a batch last failed.
	LastError string
}

// LiveSession is a session of a running program. Its logging methods return at
// once and never fail: they queue a record that a goroutine sends in batches (see
// the package documentation). Close it when the program is done. A LiveSession is
// safe for concurrent use.
type LiveSession struct {
	id                string
	client            *Client
	heartbeatInterval time.Duration
	flushTimeout      time.Duration
	seq               atomic.Int64
	sender            *sender
	ended             atomic.Bool

	monitorMu sync.Mutex // serialises starting and stopping the monitor
	monitor   atomic.Pointer[hangMonitor]

	closeOnce sync.Once
	closeErr  error
}

// StartSession opens a LiveSession on the server at $DATACAT_URL (else DefaultURL)
// with the token $DATACAT_TOKEN. It returns at once: nothing waits for the server,
// and an error only says that the options are invalid.
func StartSession(opts SessionOptions) (*LiveSession, error) {
	return NewClient("").StartSession(opts)
}

// StartSession opens a LiveSession through c (its BaseURL, Token and HTTPClient).
// It returns at once: nothing waits for the server, and an error only says that the
// options are invalid.
func (c *Client) StartSession(opts SessionOptions) (*LiveSession, error) {
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("datacat: the server's URL must be http(s)://host[:port], got %q", c.BaseURL)
	}
	id := opts.ID
	if id == "" {
		var err error
		if id, err = newUUID(); err != nil {
			return nil, err
		}
	} else if !uuidPattern.MatchString(id) {
		return nil, fmt.Errorf("datacat: a session id must be a UUID, got %q", id)
	}
	cfg := senderConfig{
		queueSize:         orInt(opts.QueueSize, DefaultQueueSize),
		batchSize:         orInt(opts.BatchSize, DefaultBatchSize),
		maxAttempts:       orInt(opts.MaxAttempts, DefaultMaxAttempts),
		linger:            orDuration(opts.Linger, DefaultLinger),
		requestTimeout:    orDuration(opts.RequestTimeout, DefaultRequestTimeout),
		flushTimeout:      orDuration(opts.FlushTimeout, DefaultFlushTimeout),
		heartbeatInterval: orDuration(opts.HeartbeatInterval, DefaultHeartbeatInterval),
		backoff:           orDuration(opts.backoff, 100*time.Millisecond),
		offlineFor:        orDuration(opts.offlineFor, time.Second),
		logf:              log.Printf,
	}
	cfg.maxBacklog = cfg.queueSize
	if opts.HeartbeatInterval < 0 {
		cfg.heartbeatInterval = 0 // none
	}
	if opts.ErrorLog != nil {
		cfg.logf = opts.ErrorLog.Printf
	}
	s := &LiveSession{id: id, client: c, heartbeatInterval: cfg.heartbeatInterval, flushTimeout: cfg.flushTimeout}
	// Sequence numbers start at the creation time in microseconds: a second writer
	// on the same session id starts far from the first one.
	s.seq.Store(time.Now().UnixMicro())
	start := s.newRecord(kindStart)
	start.Name, start.Product, start.Version = opts.Name, opts.Product, opts.Version
	if len(opts.Labels) > 0 {
		start.Labels = make(map[string]string, len(opts.Labels))
		for k, v := range opts.Labels {
			start.Labels[k] = v
		}
	}
	if opts.State != nil {
		start.State = pin(opts.State)
	}
	if cfg.heartbeatInterval > 0 {
		start.HeartbeatInterval = seconds(cfg.heartbeatInterval)
	}
	s.sender = newSender(c, cfg, start, s.heartbeatRecord)
	return s, nil
}

func orInt(value, otherwise int) int {
	if value <= 0 {
		return otherwise
	}
	return value
}

func orDuration(value, otherwise time.Duration) time.Duration {
	if value <= 0 {
		return otherwise
	}
	return value
}

// ID is the session's id.
func (s *LiveSession) ID() string { return s.id }

// Client is the Client the session sends through (for plain calls).
func (s *LiveSession) Client() *Client { return s.client }

// Stats is a snapshot of the session's counters.
func (s *LiveSession) Stats() Stats { return s.sender.stats() }

func (s *LiveSession) newRecord(kind string) *record {
	return &record{Kind: kind, SessionID: s.id, Seq: s.seq.Add(1), Timestamp: unixSeconds(time.Now())}
}

func (s *LiveSession) heartbeatRecord() *record {
	r := s.newRecord(kindHeartbeat)
	r.Interval = seconds(s.heartbeatInterval)
	return r
}

// invalid drops a record the server would refuse, with one warning per reason.
func (s *LiveSession) invalid(key, why string) {
	s.sender.submitted.Add(1)
	s.sender.drop(1, key, why)
}

// UpdateState deep-merges state into the session's state: an object merges key by
// key, recursively; any other value replaces. The state is encoded now: changing
// the map afterwards changes nothing. A nil state does nothing.
func (s *LiveSession) UpdateState(state map[string]interface{}) {
	if state == nil {
		return
	}
	r := s.newRecord(kindState)
	r.State = pin(state)
	s.sender.submit(r)
}

// LogEvent logs an event with optional data, any value JSON can encode (encoded
// now; what JSON cannot encode is sent as its text).
func (s *LiveSession) LogEvent(name string, data interface{}) {
	if name == "" {
		s.invalid("event name", "an event without a name was dropped")
		return
	}
	r := s.newRecord(kindEvent)
	r.Name = name
	if data != nil {
		r.Data = pin(data)
	}
	s.sender.submit(r)
}

// LogMetric logs a metric value with optional tags (such as "host=a").
func (s *LiveSession) LogMetric(name string, value float64, tags ...string) {
	s.LogMetricWith(name, value, MetricOptions{Tags: tags})
}

// LogMetricWith logs a metric value with its tags, unit and kind. A value that is
// not a finite number is dropped (counted, with one warning per metric name).
func (s *LiveSession) LogMetricWith(name string, value float64, opts MetricOptions) {
	if name == "" {
		s.invalid("metric name", "a metric without a name was dropped")
		return
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		s.invalid("metric "+name, fmt.Sprintf("metric %q: a value that is not a finite number was dropped", name))
		return
	}
	r := s.newRecord(kindMetric)
	r.Name, r.Value, r.Unit, r.MetricKind = name, &value, opts.Unit, opts.Kind
	if len(opts.Tags) > 0 {
		r.Tags = append([]string(nil), opts.Tags...)
	}
	s.sender.submit(r)
}

// LogError logs err as an "exception" event: its type, message, the stack where it
// was logged (most recent call first) as traceback lines, and the errors it wraps
// as causes. A nil err logs nothing.
func (s *LiveSession) LogError(err error) {
	if err != nil {
		s.LogEvent("exception", errorData(err, 1, nil))
	}
}

// LogErrorWith is LogError with extra data merged into the event's data.
func (s *LiveSession) LogErrorWith(err error, extra map[string]interface{}) {
	if err != nil {
		s.LogEvent("exception", errorData(err, 1, extra))
	}
}

// Recover, deferred, logs a panic of its goroutine as an "exception" event with the
// goroutine's stack from where it panicked, waits for it to be sent (FlushTimeout
// at most), then panics again with the same value: the program goes on as it would
// have without it (a crash prints the panic twice, the first "[recovered]"). To
// stop the panic instead, recover yourself and call LogPanic.
//
//	defer s.Recover()
func (s *LiveSession) Recover() {
	if value := recover(); value != nil {
		s.LogEvent("exception", panicData(value, 1))
		ctx, cancel := context.WithTimeout(context.Background(), s.flushTimeout)
		_ = s.Flush(ctx) // what could not be sent is counted in Stats
		cancel()
		panic(value)
	}
}

// LogPanic logs a panic value recovered by the caller, with the stack from where it
// panicked (call it in the deferred function that recovered).
func (s *LiveSession) LogPanic(value interface{}) {
	s.LogEvent("exception", panicData(value, 1))
}

// End ends the session: heartbeats stop, and the server shows it ended. Records
// logged afterwards are still stored. Close ends it too.
func (s *LiveSession) End() {
	if s.ended.Swap(true) {
		return
	}
	s.StopHeartbeatMonitor()
	s.sender.submitEnd(s.newRecord(kindEnd))
}

// Flush waits until everything logged before it is stored on the server. It returns
// nil then, an error wrapping ErrDropped when records logged since the last Flush
// were given up (Stats says why), or one wrapping ctx.Err() when ctx ended first.
// Without a deadline of its own, ctx is bounded by FlushTimeout.
func (s *LiveSession) Flush(ctx context.Context) error {
	return s.sender.flush(ctx)
}

// Details flushes (what could not be sent is counted in Stats), then reads the
// session back from the server.
func (s *LiveSession) Details(ctx context.Context) (*Session, error) {
	_ = s.Flush(ctx)
	return s.client.GetSessionContext(ctx, s.id)
}

// Close ends the session (unless End was called), stops the hang monitor, sends
// what is queued within ctx (bounded by FlushTimeout without a deadline of its
// own), then stops the goroutine. What could not be sent is dropped, and the error
// says so. Later calls return the same result; logging afterwards is dropped.
func (s *LiveSession) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.End()
		s.closeErr = s.sender.close(ctx)
	})
	return s.closeErr
}
