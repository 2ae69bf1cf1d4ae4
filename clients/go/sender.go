package datacat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// backoffCap bounds the wait between two attempts at a batch.
	backoffCap = 2 * time.Second
	// maxRetryWait: a longer Retry-After makes the sender go offline for that long
	// instead of waiting with the batch in hand.
	maxRetryWait = 5 * time.Second
	// offlineCap bounds how long the sender stays offline after repeated failures.
	offlineCap = time.Minute
	// flushRetry is how soon a flush tries again when the server did not answer (a
	// restarting server is back within seconds).
	flushRetry = 200 * time.Millisecond
)

// item is what the queue carries: a record, or a flush waiting for what came before.
type item struct {
	rec   *record
	flush *flushRequest
}

// flushRequest is resolved (done) when everything queued before it was sent.
type flushRequest struct {
	ctx  context.Context
	done chan error
}

// senderConfig is what a sender needs from SessionOptions, defaults applied.
type senderConfig struct {
	queueSize, batchSize, maxBacklog, maxAttempts int
	linger, requestTimeout, flushTimeout          time.Duration
	heartbeatInterval, backoff, offlineFor        time.Duration
	logf                                          func(format string, args ...interface{})
}

// sender owns one session's way to the server: a bounded queue that logging calls
// append to without waiting, and one goroutine that takes records off it in batches,
// posts them to /api/ingest, retries, and holds what it could not send (bounded)
// while the server is down. It is the Go form of the Python client's
// BackgroundSender, without the spool file: past its bounds it drops, and counts.
type sender struct {
	client    *Client
	cfg       senderConfig
	heartbeat func() *record // builds a liveness record

	queue chan item
	wake  chan struct{} // an end record waits outside the full queue
	stop  chan struct{} // closed by close: the goroutine returns
	done  chan struct{} // closed when the goroutine has returned
	// ctx is cancelled by close, ending any request in flight.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // submit holds it to read closed; close sets closed under it
	closed bool
	endMu  sync.Mutex
	endRec *record
	// beating: liveness heartbeats are due (until the session ends).
	beating atomic.Bool

	submitted, sent, duplicates, dropped, batches, retries atomic.Int64
	errMu                                                  sync.Mutex
	lastErr                                                string
	warned                                                 sync.Map

	// Owned by the goroutine (and read by close once it has returned).
	start        *record   // the session's start: sent again when the server lost it
	backlog      []*record // taken off the queue, not yet sent
	offlineUntil time.Time // no network before this, but a flush may probe
	offlineFor   time.Duration
	firm         bool  // the server asked for the wait: no probe before offlineUntil
	reported     int64 // drops a flush has reported
	outage       bool  // a warning about an outage was logged
}

func newSender(client *Client, cfg senderConfig, start *record, heartbeat func() *record) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{
		client:     client,
		cfg:        cfg,
		heartbeat:  heartbeat,
		queue:      make(chan item, cfg.queueSize),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		start:      start,
		backlog:    []*record{start}, // first, and never dropped for want of room
		offlineFor: cfg.offlineFor,
	}
	s.submitted.Add(1)
	s.beating.Store(cfg.heartbeatInterval > 0)
	go s.run()
	return s
}

// -- the callers' side (never blocks) ---------------------------------------------------

// submit queues a record; a full queue, or a closed sender, drops it (counted).
func (s *sender) submit(r *record) {
	s.submitted.Add(1)
	s.mu.RLock()
	closed, queued := s.closed, false
	if !closed {
		select {
		case s.queue <- item{rec: r}:
			queued = true
		default:
		}
	}
	s.mu.RUnlock()
	switch {
	case closed:
		s.drop(1, "closed", "a record logged after Close was dropped")
	case !queued:
		s.drop(1, "full", fmt.Sprintf("the queue is full (%d records): records are dropped until it drains", cap(s.queue)))
	}
}

// submitEnd queues the session's end; when the queue is full, it waits beside it,
// so that the end is never dropped for want of room.
func (s *sender) submitEnd(r *record) {
	s.submitted.Add(1)
	s.beating.Store(false)
	select {
	case s.queue <- item{rec: r}:
		return
	default:
	}
	s.endMu.Lock()
	s.endRec = r
	s.endMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop counts records given up, and says why once per reason.
func (s *sender) drop(n int, key, why string) {
	s.dropped.Add(int64(n))
	s.setLastError(why)
	s.warnOnce(key, "datacat: %s", why)
}

func (s *sender) warnOnce(key, format string, args ...interface{}) {
	if _, seen := s.warned.LoadOrStore(key, true); !seen {
		s.cfg.logf(format, args...)
	}
}

func (s *sender) setLastError(why string) {
	s.errMu.Lock()
	s.lastErr = why
	s.errMu.Unlock()
}

// flush waits until what was queued before it is sent, or ctx ends.
func (s *sender) flush(ctx context.Context) error {
	ctx, cancel := withDefaultDeadline(ctx, s.cfg.flushTimeout)
	defer cancel()
	select {
	case <-s.done:
		return fmt.Errorf("datacat: flush: %w", ErrClosed)
	default:
	}
	req := &flushRequest{ctx: ctx, done: make(chan error, 1)}
	select {
	case s.queue <- item{flush: req}:
	case <-ctx.Done():
		return fmt.Errorf("datacat: flush: %w", ctx.Err())
	case <-s.done:
		return fmt.Errorf("datacat: flush: %w", ErrClosed)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("datacat: flush: %w", ctx.Err())
	case <-s.done:
		return fmt.Errorf("datacat: flush: %w", ErrClosed)
	}
}

// close flushes within ctx, stops the goroutine, and counts what is left as dropped.
func (s *sender) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.flush(ctx)
	close(s.stop)
	s.cancel()
	<-s.done
	left := 0
	for _, r := range s.backlog {
		if r.Kind != kindHeartbeat {
			left++
		}
	}
	s.backlog = nil
	for drained := false; !drained; {
		select {
		case it := <-s.queue:
			if it.flush != nil {
				it.flush.done <- fmt.Errorf("datacat: flush: %w", ErrClosed)
			} else if it.rec.Kind != kindHeartbeat {
				left++
			}
		default:
			drained = true
		}
	}
	if s.takeEnd() != nil {
		left++
	}
	if left > 0 {
		s.drop(left, "left", fmt.Sprintf("%d records were not sent before Close's deadline", left))
		if err == nil {
			err = fmt.Errorf("datacat: close: %d records not sent: %w", left, ErrDropped)
		}
	}
	return err
}

// stats is a snapshot of the counters.
func (s *sender) stats() Stats {
	s.errMu.Lock()
	lastErr := s.lastErr
	s.errMu.Unlock()
	return Stats{
		Submitted:  s.submitted.Load(),
		Sent:       s.sent.Load(),
		Duplicates: s.duplicates.Load(),
		Dropped:    s.dropped.Load(),
		Batches:    s.batches.Load(),
		Retries:    s.retries.Load(),
		LastError:  lastErr,
	}
}

// -- the goroutine ----------------------------------------------------------------------

func (s *sender) run() {
	defer close(s.done)
	linger := newStoppedTimer()
	defer linger.Stop()
	retry := newStoppedTimer()
	defer retry.Stop()
	var beat <-chan time.Time
	if s.cfg.heartbeatInterval > 0 {
		ticker := time.NewTicker(s.cfg.heartbeatInterval)
		defer ticker.Stop()
		beat = ticker.C
	}
	s.pump(s.ctx, false) // the session's start, at once
	for {
		var flush *flushRequest
		select {
		case <-s.stop:
			return
		case it := <-s.queue:
			flush = s.collect(it, linger)
		case <-beat:
			if s.beating.Load() && !s.offline() {
				s.backlog = append(s.backlog, s.heartbeat())
			}
		case <-s.wake:
		case <-retry.C:
		}
		if r := s.takeEnd(); r != nil {
			s.backlog = append(s.backlog, r)
		}
		if flush != nil {
			s.resolve(flush)
		} else {
			s.pump(s.ctx, false)
		}
		if len(s.backlog) > 0 {
			// Offline with records in hand: try again when the period is over.
			resetTimer(retry, time.Until(s.offlineUntil))
		}
	}
}

// collect holds records off the queue until a batch is full, the linger time has
// passed since the first one, or a flush comes (returned).
func (s *sender) collect(first item, linger *time.Timer) *flushRequest {
	if first.flush != nil {
		return first.flush
	}
	s.hold(first.rec)
	resetTimer(linger, s.cfg.linger)
	for n := 1; n < s.cfg.batchSize; n++ {
		select {
		case it := <-s.queue:
			if it.flush != nil {
				return it.flush
			}
			s.hold(it.rec)
		case <-linger.C:
			return nil
		case <-s.stop:
			return nil
		}
	}
	return nil
}

// hold keeps a record to send; past maxBacklog (the server is down) it drops it,
// but never the session's start or end.
func (s *sender) hold(r *record) {
	if len(s.backlog) >= s.cfg.maxBacklog && r.Kind != kindStart && r.Kind != kindEnd {
		s.drop(1, "backlog", fmt.Sprintf("the server does not answer and %d records wait: records are dropped until it does", len(s.backlog)))
		return
	}
	s.backlog = append(s.backlog, r)
}

func (s *sender) takeEnd() *record {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	r := s.endRec
	s.endRec = nil
	return r
}

func (s *sender) offline() bool {
	return time.Now().Before(s.offlineUntil)
}

// pump sends the backlog, oldest first, a batch at a time; true when it is empty.
// While offline it sends nothing, unless probe (a flush waits) and the server did
// not ask for the wait.
func (s *sender) pump(ctx context.Context, probe bool) bool {
	for len(s.backlog) > 0 {
		if s.offline() && (!probe || s.firm) {
			return false
		}
		n := len(s.backlog)
		if n > s.cfg.batchSize {
			n = s.cfg.batchSize
		}
		sent := s.post(ctx, s.backlog[:n])
		for i := 0; i < sent; i++ {
			s.backlog[i] = nil // let the garbage collector have them
		}
		s.backlog = s.backlog[sent:]
		if sent < n {
			return false
		}
		probe = false
	}
	s.backlog = nil
	return true
}

// post sends records in one batch, with retries; it returns how many of them, from
// the first, are done with: stored, or given up because the server refused them.
// Fewer than all means the server did not answer (the sender is then offline), or
// ctx ended.
func (s *sender) post(ctx context.Context, records []*record) int {
	attempts := s.cfg.maxAttempts
	if s.offline() {
		attempts = 1 // a probe
	}
	delay, wait, firm := s.cfg.backoff, time.Duration(0), false
	startResent := false
	var lastErr error
	for attempt := 0; attempt < attempts; {
		if attempt > 0 {
			s.retries.Add(1)
			if !s.sleep(ctx, wait) {
				return 0
			}
		}
		ack, err := s.postOnce(ctx, records)
		if err == nil {
			s.backOnline()
			s.sent.Add(ack.Accepted)
			s.duplicates.Add(ack.Duplicates)
			s.batches.Add(1)
			return len(records)
		}
		if ctx.Err() != nil {
			return 0
		}
		lastErr = err
		var apiErr *APIError
		if errors.As(err, &apiErr) && !apiErr.retryable() {
			switch {
			case apiErr.StatusCode == http.StatusNotFound && !startResent && s.start != nil && records[0] != s.start:
				// The server does not know the session (its database was replaced,
				// or the start was lost): send the start again, then these.
				startResent = true
				if s.post(ctx, []*record{s.start}) == 0 {
					return 0
				}
				continue
			case apiErr.StatusCode == http.StatusBadRequest ||
				apiErr.StatusCode == http.StatusRequestEntityTooLarge ||
				apiErr.StatusCode == http.StatusUnprocessableEntity:
				return s.bisect(ctx, records, apiErr)
			default: // 401, 403, 404...: sending them again will not help
				s.refuse(len(records), records, apiErr)
				s.goOffline(0, true)
				return len(records)
			}
		}
		wait, firm = delay, false
		if apiErr != nil && apiErr.RetryAfter > 0 {
			wait, firm = apiErr.RetryAfter, true
		}
		if delay *= 2; delay > backoffCap {
			delay = backoffCap
		}
		attempt++
		if wait > maxRetryWait {
			break
		}
	}
	s.goOffline(wait, firm)
	s.setLastError(lastErr.Error())
	if !s.outage {
		s.outage = true
		s.cfg.logf("datacat: cannot send to %s (%v); up to %d records are kept until it answers, the rest dropped",
			s.client.BaseURL, lastErr, s.cfg.maxBacklog)
	}
	return 0
}

// bisect finds the records a batch was refused for (400: one breaks a rule of the
// server), sending the others: halves, until a record refused alone is dropped.
func (s *sender) bisect(ctx context.Context, records []*record, err *APIError) int {
	if len(records) == 1 {
		s.refuse(1, records, err)
		return 1
	}
	mid := len(records) / 2
	done := s.post(ctx, records[:mid])
	if done < mid {
		return done
	}
	return mid + s.post(ctx, records[mid:])
}

// refuse drops records the server refused.
func (s *sender) refuse(n int, records []*record, err *APIError) {
	for _, r := range records {
		if r == s.start {
			s.start = nil // refused alone: sending it again cannot help
		}
	}
	s.drop(n, fmt.Sprintf("refused %d", err.StatusCode), fmt.Sprintf("the server refused %d records: %v", n, err))
}

// postOnce makes one POST /api/ingest of records.
func (s *sender) postOnce(ctx context.Context, records []*record) (batchAck, error) {
	var ack batchAck
	body, err := encodeBatch(records)
	if err != nil { // not JSON: the server would refuse it too
		return ack, &APIError{Method: http.MethodPost, Path: "/api/ingest", StatusCode: http.StatusBadRequest, Detail: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.requestTimeout)
	defer cancel()
	resp, err := s.client.send(ctx, http.MethodPost, "/api/ingest", body)
	if err != nil {
		return ack, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		return ack, fmt.Errorf("datacat: reading the answer to a batch: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)) // keep the connection
	return ack, nil
}

// sleep waits d; false when ctx ended or the sender stops first.
func (s *sender) sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.stop:
		return false
	}
}

// goOffline: no network until the offline period (at least atLeast) is over. While
// offline, heartbeats are not kept (they say the program is alive now or never).
func (s *sender) goOffline(atLeast time.Duration, firm bool) {
	period := s.offlineFor
	if atLeast > period {
		period = atLeast
	}
	s.offlineUntil = time.Now().Add(period)
	if s.offlineFor *= 2; s.offlineFor > offlineCap {
		s.offlineFor = offlineCap
	}
	s.firm = firm
	kept := s.backlog[:0]
	for _, r := range s.backlog {
		if r.Kind != kindHeartbeat {
			kept = append(kept, r)
		}
	}
	for i := len(kept); i < len(s.backlog); i++ {
		s.backlog[i] = nil
	}
	s.backlog = kept
}

func (s *sender) backOnline() {
	if s.outage {
		s.cfg.logf("datacat: %s answers again", s.client.BaseURL)
	}
	s.outage, s.firm = false, false
	s.offlineUntil = time.Time{}
	s.offlineFor = s.cfg.offlineFor
}

// resolve answers a flush: the backlog sent (nil, or ErrDropped when records were
// given up since the last flush said so), or its context's end.
func (s *sender) resolve(req *flushRequest) {
	ctx, cancel := s.join(req.ctx)
	defer cancel()
	for !s.pump(ctx, true) {
		wait := flushRetry
		if s.firm {
			wait = time.Until(s.offlineUntil)
		}
		if !s.sleep(ctx, wait) {
			err := ctx.Err()
			if err == nil {
				err = ErrClosed
			}
			req.done <- fmt.Errorf("datacat: flush: %d records not sent: %w", len(s.backlog), err)
			return
		}
	}
	dropped := s.dropped.Load()
	if n := dropped - s.reported; n > 0 {
		s.reported = dropped
		req.done <- fmt.Errorf("datacat: flush: %d records since the last flush: %w", n, ErrDropped)
		return
	}
	req.done <- nil
}

// join is ctx, ended also when the sender closes.
func (s *sender) join(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.ctx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// withDefaultDeadline is ctx, bounded by timeout when it has no deadline of its own.
func withDefaultDeadline(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// resetTimer stops t, empties its channel if it fired unread, and sets it to d.
func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	if d <= 0 {
		d = time.Millisecond
	}
	t.Reset(d)
}
