package datacat

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTheStartIsSentAtOnceWithSequenceNumbersFromTheCreationTime(t *testing.T) {
	server := newIngestServer(t)
	before := time.Now()
	s := server.start(t, SessionOptions{
		Name: "app", Product: "shop", Version: "1.2", Labels: map[string]string{"env": "ci"},
		State: map[string]interface{}{"window": map[string]interface{}{"theme": "dark"}},
	})
	waitFor(t, "the start", func() bool { return len(server.records("session_start")) == 1 })
	start := server.records("session_start")[0]
	if start.session() != s.ID() || start.name() != "app" || start["product"] != "shop" || start["version"] != "1.2" {
		t.Fatalf("start %v", start)
	}
	if labels := start["labels"].(map[string]interface{}); labels["env"] != "ci" {
		t.Fatalf("labels %v", labels)
	}
	if state := start["state"].(map[string]interface{}); state["window"].(map[string]interface{})["theme"] != "dark" {
		t.Fatalf("state %v", state)
	}
	if start.number("heartbeat_interval") != DefaultHeartbeatInterval.Seconds() {
		t.Fatalf("heartbeat_interval %v", start["heartbeat_interval"])
	}
	if seq := start.seq(); seq <= before.UnixMicro() || seq > time.Now().UnixMicro()+1 {
		t.Fatalf("seq %d is not the creation time in microseconds (%d)", seq, before.UnixMicro())
	}
	if ts := start.number("timestamp"); ts < float64(before.Unix())-1 || ts > float64(time.Now().Unix())+1 {
		t.Fatalf("timestamp %v is not Unix seconds", ts)
	}
	if got := server.requests[0].Header.Get("Authorization"); got != "Bearer t0ken" {
		t.Fatalf("Authorization %q", got)
	}
	if !uuidPattern.MatchString(s.ID()) {
		t.Fatalf("id %q", s.ID())
	}
}

func TestRecordsArriveInBatchesInOrderEachWithItsOwnSeq(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{BatchSize: 10, Linger: time.Hour, HeartbeatInterval: -1})
	waitFor(t, "the start", func() bool { return len(server.posted()) == 1 })
	for i := 0; i < 25; i++ {
		s.LogEvent("step", map[string]interface{}{"i": i})
	}
	// Two full batches go at once; the rest waits for the linger time, or a flush.
	waitFor(t, "two full batches", func() bool { return len(server.posted()) == 3 })
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, batch := range server.posted() {
		sizes = append(sizes, len(batch))
	}
	if fmt.Sprint(sizes) != "[1 10 10 5]" {
		t.Fatalf("batch sizes %v", sizes)
	}
	events := server.events("step")
	for i, event := range events {
		if int(event.data().number("i")) != i {
			t.Fatalf("event %d has data %v", i, event.data())
		}
		if i > 0 && event.seq() != events[i-1].seq()+1 {
			t.Fatalf("seq %d after %d", event.seq(), events[i-1].seq())
		}
	}
	stats := s.Stats()
	if stats.Submitted != 26 || stats.Sent != 26 || stats.Batches != 4 || stats.Dropped != 0 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestEachKindOfRecordOnTheWire(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	state := map[string]interface{}{"window": map[string]interface{}{"open": []string{"cart"}}}
	s.UpdateState(state)
	state["window"] = "changed after the call" // the call encoded it already
	s.UpdateState(nil)                         // nothing to merge: nothing sent
	s.LogEvent("plain", nil)
	s.LogEvent("odd", make(chan int)) // JSON cannot encode it: sent as text
	s.LogEvent("number", 5)
	s.LogMetric("latency", 41.5, "route=/a", "host=b")
	s.LogMetricWith("bytes", 0, MetricOptions{Unit: "bytes", Kind: "counter"})
	s.End()
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := server.records("")
	if names(got) != "session_start state event:plain event:odd event:number metric:latency metric:bytes end" {
		t.Fatalf("records %s", names(got))
	}
	if open := got[1]["state"].(map[string]interface{})["window"].(map[string]interface{})["open"]; fmt.Sprint(open) != "[cart]" {
		t.Fatalf("state %v", got[1]["state"])
	}
	if _, ok := got[2]["data"]; ok {
		t.Fatalf("an event without data sent data: %v", got[2])
	}
	if text, _ := got[3]["data"].(string); !strings.HasPrefix(text, "0x") {
		t.Fatalf("unencodable data sent as %v", got[3]["data"])
	}
	if got[4].number("data") != 5 {
		t.Fatalf("data %v", got[4]["data"])
	}
	if got[5].number("value") != 41.5 || fmt.Sprint(got[5]["tags"]) != "[route=/a host=b]" || got[5]["unit"] != nil {
		t.Fatalf("metric %v", got[5])
	}
	// The value 0 is sent (not left out as empty); the record's tag is "kind".
	if v, ok := got[6]["value"]; !ok || v != 0.0 || got[6]["unit"] != "bytes" || got[6]["metric_kind"] != "counter" || got[6].kind() != "metric" {
		t.Fatalf("metric %v", got[6])
	}
}

func TestInvalidRecordsAreDroppedAtTheCallAndCounted(t *testing.T) {
	server := newIngestServer(t)
	logs := &lockedBuffer{}
	s := server.start(t, SessionOptions{ErrorLog: log.New(logs, "", 0), HeartbeatInterval: -1})
	s.LogEvent("", nil)
	s.LogMetric("", 1)
	s.LogMetric("m", math.NaN())
	s.LogMetric("m", math.Inf(1))
	s.LogError(nil)
	s.LogErrorWith(nil, nil)
	s.LogMetric("m", 1)
	if err := s.Flush(timeout(t, 5*time.Second)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(server.records("metric")); n != 1 {
		t.Fatalf("%d metrics stored", n)
	}
	stats := s.Stats()
	if stats.Dropped != 4 || stats.Submitted != 6 || !strings.Contains(stats.LastError, "finite") {
		t.Fatalf("stats %+v", stats)
	}
	// One warning per reason.
	if n := strings.Count(logs.String(), `metric "m": a value that is not a finite number`); n != 1 {
		t.Fatalf("%d warnings:\n%s", n, logs)
	}
}

func TestRetryAfterIsHonouredAndTheBatchStoredOnce(t *testing.T) {
	for _, tc := range []struct {
		status int
		header string
	}{
		{http.StatusServiceUnavailable, "Retry-After"},
		{http.StatusTooManyRequests, "Retry-After"},
		{http.StatusTooManyRequests, "RateLimit-Reset"},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.header), func(t *testing.T) {
			server := newIngestServer(t)
			var times []time.Time
			var mu sync.Mutex
			server.setScript(func(n int, _ []wireRecord) answer {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				if n == 0 {
					return answer{status: tc.status, header: map[string]string{tc.header: "0.3"}}
				}
				return answer{}
			})
			s := server.start(t, SessionOptions{HeartbeatInterval: -1})
			s.LogEvent("e", nil)
			if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			gap := times[1].Sub(times[0])
			mu.Unlock()
			if gap < 300*time.Millisecond {
				t.Fatalf("retried after %v, before the %s of 0.3 s", gap, tc.header)
			}
			if n := len(server.records("session_start")); n != 1 {
				t.Fatalf("%d starts stored", n)
			}
			if stats := s.Stats(); stats.Retries < 1 || stats.Dropped != 0 || stats.Sent != 2 {
				t.Fatalf("stats %+v", stats)
			}
		})
	}
}

func TestABatchSentAgainAfterALostAnswerIsStoredOnce(t *testing.T) {
	server := newIngestServer(t)
	server.setScript(func(n int, records []wireRecord) answer {
		if n == 1 { // stored, then the answer is lost
			return answer{status: http.StatusBadGateway, store: true}
		}
		return answer{}
	})
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	waitFor(t, "the start", func() bool { return len(server.posted()) == 1 })
	for i := 0; i < 5; i++ {
		s.LogEvent("e", i)
	}
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	batches := server.posted()
	if len(batches) != 3 || fmt.Sprint(batches[1]) != fmt.Sprint(batches[2]) {
		t.Fatalf("the same batch was not sent again: %v", batches)
	}
	if n := len(server.events("e")); n != 5 {
		t.Fatalf("%d events stored", n)
	}
	if stats := s.Stats(); stats.Duplicates != 5 || stats.Sent != 1 || stats.Retries != 1 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestWhileTheServerIsDownCallsNeverBlockAndDropsAreCounted(t *testing.T) {
	server := newIngestServer(t)
	url := server.srv.URL
	server.srv.Close() // nothing listens any more
	logs := &lockedBuffer{}
	s, err := NewClient(url).StartSession(SessionOptions{
		QueueSize: 20, MaxAttempts: 1, HeartbeatInterval: -1, Linger: time.Millisecond,
		ErrorLog: log.New(logs, "", 0), backoff: time.Millisecond, offlineFor: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		s.LogEvent("e", i)
	}
	waitFor(t, "drops", func() bool { return s.Stats().Dropped > 0 })
	err = s.Close(timeout(t, 200*time.Millisecond))
	if !errors.Is(err, ErrDropped) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	stats := s.Stats()
	if stats.Submitted != 502 || stats.Sent != 0 || stats.Dropped != 502 {
		t.Fatalf("every record is either sent or counted as dropped: %+v", stats)
	}
	if !strings.Contains(logs.String(), "cannot send to "+url) {
		t.Fatalf("no warning:\n%s", logs)
	}
	if !strings.Contains(stats.LastError, "not sent before Close") {
		t.Fatalf("LastError %q", stats.LastError)
	}
}

func TestRecordsHeldWhileTheServerIsDownAreSentWhenItIsBack(t *testing.T) {
	server := newIngestServer(t)
	down := make(chan struct{})
	var once sync.Once
	server.setScript(func(n int, _ []wireRecord) answer {
		select {
		case <-down:
			return answer{}
		default:
			return answer{status: http.StatusServiceUnavailable}
		}
	})
	logs := &lockedBuffer{}
	s := server.start(t, SessionOptions{MaxAttempts: 2, HeartbeatInterval: -1, ErrorLog: log.New(logs, "", 0)})
	for i := 0; i < 50; i++ {
		s.LogEvent("e", i)
	}
	waitFor(t, "the sender to give up once", func() bool { return strings.Contains(logs.String(), "cannot send") })
	once.Do(func() { close(down) })
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(server.events("e")); n != 50 {
		t.Fatalf("%d of 50 events stored", n)
	}
	if stats := s.Stats(); stats.Dropped != 0 || stats.Sent != 51 {
		t.Fatalf("stats %+v", stats)
	}
	if !strings.Contains(logs.String(), "answers again") {
		t.Fatalf("logs:\n%s", logs)
	}
}

func TestPastItsBoundTheBacklogDropsButKeepsTheStartAndTheEnd(t *testing.T) {
	server := newIngestServer(t)
	up := make(chan struct{})
	server.setScript(func(n int, _ []wireRecord) answer {
		select {
		case <-up:
			return answer{}
		default:
			return answer{status: http.StatusServiceUnavailable}
		}
	})
	s := server.start(t, SessionOptions{QueueSize: 10, MaxAttempts: 1, HeartbeatInterval: -1, offlineFor: time.Minute})
	waitFor(t, "a first failure", func() bool { return len(server.posted()) > 0 })
	for i := 0; i < 100; i++ {
		s.LogEvent("e", i)
	}
	s.End()
	waitFor(t, "drops", func() bool { return s.Stats().Dropped >= 80 })
	close(up)
	if err := s.Flush(timeout(t, 5*time.Second)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(server.records("session_start")) + len(server.records("end")); n != 2 {
		t.Fatalf("start and end: %d stored", n)
	}
	stats := s.Stats()
	if stats.Sent+stats.Dropped != stats.Submitted || stats.Submitted != 102 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestTheEndIsNotDroppedWhenTheQueueIsFull(t *testing.T) {
	server := newIngestServer(t)
	release := make(chan struct{})
	server.setScript(func(n int, _ []wireRecord) answer {
		if n == 0 {
			return answer{hold: release}
		}
		return answer{}
	})
	s := server.start(t, SessionOptions{QueueSize: 2, BatchSize: 1, HeartbeatInterval: -1})
	waitFor(t, "the first post", func() bool { return len(server.posted()) == 1 })
	for i := 0; i < 10; i++ {
		s.LogEvent("e", i)
	}
	s.End()
	close(release)
	if err := s.Close(timeout(t, 5*time.Second)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Close: %v", err)
	}
	if n := len(server.records("end")); n != 1 {
		t.Fatalf("%d ends stored", n)
	}
	if stats := s.Stats(); stats.Dropped != 8 || stats.Sent != 4 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestARefusedBatchIsSplitToFindTheRecordTheServerRefused(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1, Linger: time.Hour, BatchSize: 8})
	waitFor(t, "the start", func() bool { return len(server.records("")) == 1 })
	for i := 0; i < 8; i++ {
		name := "good"
		if i == 5 {
			name = "bad"
		}
		s.LogEvent(name, i)
	}
	if err := s.Flush(timeout(t, 5*time.Second)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(server.events("good")); n != 7 {
		t.Fatalf("%d of 7 good events stored", n)
	}
	stats := s.Stats()
	if stats.Dropped != 1 || !strings.Contains(stats.LastError, "HTTP 400: $.records[") {
		t.Fatalf("stats %+v", stats)
	}
}

func TestAServerThatLostTheSessionGetsItsStartAgain(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	waitFor(t, "the start", func() bool { return len(server.records("")) == 1 })
	server.forget()
	s.LogEvent("after", nil)
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if names(server.records("")) != "session_start event:after" {
		t.Fatalf("stored %s", names(server.records("")))
	}
}

func TestARefusalThatRetryingCannotFixDropsTheBatch(t *testing.T) {
	server := newIngestServer(t)
	server.setScript(func(int, []wireRecord) answer { return answer{status: http.StatusForbidden} })
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	s.LogEvent("e", nil)
	if err := s.Flush(timeout(t, 5*time.Second)); !errors.Is(err, ErrDropped) {
		t.Fatalf("Flush: %v", err)
	}
	if stats := s.Stats(); stats.Retries != 0 || !strings.Contains(stats.LastError, "HTTP 403: scripted 403") {
		t.Fatalf("stats %+v", stats)
	}
}

func TestFlushAndCloseKeepTheirDeadlineWhenTheServerHangs(t *testing.T) {
	server := newIngestServer(t)
	hang := make(chan struct{})
	defer close(hang)
	server.setScript(func(int, []wireRecord) answer { return answer{hold: hang} })
	s := server.start(t, SessionOptions{HeartbeatInterval: -1, FlushTimeout: 50 * time.Millisecond})
	s.LogEvent("e", nil)
	if err := s.Flush(timeout(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush: %v", err)
	}
	// Without a deadline of its own, FlushTimeout bounds it.
	if err := s.Flush(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush: %v", err)
	}
	if err := s.Close(timeout(t, 50*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	assertNoGoroutineOfOurs(t)
}

func TestCloseStopsEveryGoroutineAndLaterCallsAreHarmless(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: 5 * time.Millisecond})
	s.StartHeartbeatMonitor(time.Hour, time.Millisecond)
	s.LogEvent("before", nil)
	if err := s.Close(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	assertNoGoroutineOfOurs(t)
	if err := s.Close(timeout(t, time.Second)); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	s.LogEvent("after", nil)
	s.End()
	s.StartHeartbeatMonitor(time.Hour, time.Millisecond) // ended: not started
	s.Heartbeat()
	if err := s.Flush(timeout(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	if stats := s.Stats(); stats.Dropped != 1 || !strings.Contains(stats.LastError, "after Close") {
		t.Fatalf("stats %+v", stats)
	}
	assertNoGoroutineOfOurs(t)
	if n := len(server.records("end")); n != 1 {
		t.Fatalf("%d ends", n)
	}
}

// assertNoGoroutineOfOurs fails if a goroutine of this package still runs (the
// test's own excepted), once it had a moment to return.
func assertNoGoroutineOfOurs(t *testing.T) {
	t.Helper()
	ours := func() string {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var found []string
		for _, block := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(block, "clients/go.(*sender)") || strings.Contains(block, "clients/go.(*hangMonitor)") ||
				strings.Contains(block, "clients/go.(*sender).join") {
				found = append(found, block)
			}
		}
		return strings.Join(found, "\n\n")
	}
	deadline := time.Now().Add(2 * time.Second)
	for left := ours(); left != ""; left = ours() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left:\n%s", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHeartbeatsTellTheServerTheSessionIsAliveUntilItEnds(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: 10 * time.Millisecond})
	waitFor(t, "heartbeats", func() bool { return len(server.records("heartbeat")) >= 2 })
	for _, beat := range server.records("heartbeat") {
		if beat.number("interval") != 0.01 || beat.session() != s.ID() {
			t.Fatalf("heartbeat %v", beat)
		}
	}
	if start := server.records("session_start")[0]; start.number("heartbeat_interval") != 0.01 {
		t.Fatalf("start %v", start)
	}
	s.End()
	waitFor(t, "the end", func() bool { return len(server.records("end")) == 1 })
	beats := len(server.records("heartbeat"))
	s.LogEvent("after the end", nil) // a batch goes: no heartbeat rides along
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(server.records("heartbeat")); n > beats+1 {
		t.Fatalf("%d heartbeats after the end", n-beats)
	}
	if stats := s.Stats(); stats.Submitted != 3 {
		t.Fatalf("heartbeats are not counted as submitted: %+v", stats)
	}
}

func TestTheHangMonitorReportsAHangOnceWithStacksThenTheRecovery(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	parked := make(chan struct{})
	defer close(parked)
	go parkForTheHangTest(parked)
	s.StartHeartbeatMonitor(30*time.Millisecond, 5*time.Millisecond)
	monitor := s.monitor.Load()
	waitFor(t, "the hang", func() bool { return len(server.events("application_appears_hung")) == 1 })
	checks := monitor.checks.Load()
	waitFor(t, "more checks", func() bool { return monitor.checks.Load() >= checks+5 })
	s.Heartbeat()
	waitFor(t, "the recovery", func() bool { return len(server.events("application_recovered")) == 1 })
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	hangs := server.events("application_appears_hung")
	if len(hangs) != 1 {
		t.Fatalf("%d hang events", len(hangs))
	}
	data := hangs[0].data()
	if data.number("seconds_since_heartbeat") < 0.03 || data.number("timeout") != 0.03 || data.number("pid") == 0 {
		t.Fatalf("hang data %v", data)
	}
	var stacks []string
	for _, thread := range data["threads"].([]interface{}) {
		entry := thread.(map[string]interface{})
		var text []string
		for _, line := range entry["stack"].([]interface{}) {
			text = append(text, line.(string))
		}
		stacks = append(stacks, fmt.Sprint(entry["name"], "\n", strings.Join(text, "")))
	}
	all := strings.Join(stacks, "\n")
	if !strings.Contains(all, "parkForTheHangTest") || strings.Contains(all, "(*hangMonitor).inspect") {
		t.Fatalf("stacks:\n%s", all)
	}
	if recovered := server.events("application_recovered")[0].data(); recovered.number("hang_duration") < 0.03 {
		t.Fatalf("recovery %v", recovered)
	}
	// A second hang is reported again.
	waitFor(t, "a second hang", func() bool { return len(server.events("application_appears_hung")) == 2 })
	s.StopHeartbeatMonitor()
	s.Heartbeat() // no monitor: nothing happens
}

func parkForTheHangTest(parked <-chan struct{}) { <-parked }

func TestGoroutineStacksAreBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	for i := 0; i < 3000; i++ {
		go parkForTheHangTest(release)
	}
	threads := goroutineStacks()
	last := threads[len(threads)-1]
	if !strings.Contains(last["name"].(string), "more goroutines (left out)") {
		t.Fatalf("last entry %v", last["name"])
	}
	size := 0
	for _, thread := range threads {
		for _, line := range thread["stack"].([]string) {
			size += len(line)
		}
	}
	if size > maxStacksBytes {
		t.Fatalf("%d bytes of stacks", size)
	}
}

func TestLogErrorSendsTypeMessageStackAndCauses(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	base := errors.New("disk full")
	s.LogError(fmt.Errorf("saving the cart: %w", base))
	s.LogErrorWith(base, map[string]interface{}{"cart": 7})
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	events := server.events("exception")
	if len(events) != 2 {
		t.Fatalf("%d exception events", len(events))
	}
	data := events[0].data()
	if data["type"] != "*fmt.wrapError" || data["message"] != "saving the cart: disk full" {
		t.Fatalf("data %v", data)
	}
	traceback := data["traceback"].([]interface{})
	if first := traceback[0].(string); !strings.HasPrefix(first, "github.com/datacat/datacat/clients/go.TestLogErrorSendsTypeMessageStackAndCauses\n\t") ||
		!strings.Contains(first, "live_test.go:") || !strings.HasSuffix(first, "\n") {
		t.Fatalf("traceback starts with %q", first)
	}
	causes := data["causes"].([]interface{})
	if len(causes) != 1 || causes[0].(map[string]interface{})["message"] != "disk full" {
		t.Fatalf("causes %v", causes)
	}
	if extra := events[1].data(); extra.number("cart") != 7 || extra["type"] != "*errors.errorString" || extra["causes"] != nil {
		t.Fatalf("data %v", extra)
	}
}

func TestRecoverLogsThePanicWithItsStackThenPanicsAgain(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	caught := make(chan interface{})
	go func() {
		defer func() { caught <- recover() }()
		defer s.Recover()
		panicInTheRecoverTest()
	}()
	if value := <-caught; value != "the cart is gone" {
		t.Fatalf("the panic went on with %v", value)
	}
	// Recover flushed before panicking again.
	events := server.events("exception")
	if len(events) != 1 {
		t.Fatalf("%d exception events", len(events))
	}
	data := events[0].data()
	if data["type"] != "panic" || data["message"] != "the cart is gone" || data["value_type"] != "string" {
		t.Fatalf("data %v", data)
	}
	traceback := data["traceback"].([]interface{})
	if first := traceback[0].(string); !strings.Contains(first, ".panicInTheRecoverTest\n") {
		t.Fatalf("the stack does not start where it panicked: %v", traceback)
	}
	for _, line := range traceback {
		if strings.Contains(line.(string), "(*LiveSession).Recover") || strings.HasPrefix(line.(string), "runtime.") {
			t.Fatalf("the panic machinery is in the stack: %v", traceback)
		}
	}
	s.Recover() // no panic: nothing happens
}

func panicInTheRecoverTest() { panic("the cart is gone") }

func TestLogPanicOfARuntimeError(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	func() {
		defer func() {
			if value := recover(); value != nil {
				s.LogPanic(value)
			}
		}()
		var counts map[string]int
		counts["x"]++
	}()
	func() {
		defer func() { s.LogPanic(recover()) }()
		panic(fmt.Errorf("wrapped: %w", context.Canceled))
	}()
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	events := server.events("exception")
	data := events[0].data()
	if data["message"] != "assignment to entry in nil map" || !strings.HasPrefix(data["value_type"].(string), "runtime.") {
		t.Fatalf("data %v", data)
	}
	if first := data["traceback"].([]interface{})[0].(string); !strings.Contains(first, "TestLogPanicOfARuntimeError") {
		t.Fatalf("traceback %v", data["traceback"])
	}
	if causes := events[1].data()["causes"].([]interface{}); causes[0].(map[string]interface{})["message"] != "context canceled" {
		t.Fatalf("causes %v", causes)
	}
}

func TestManyGoroutinesLogConcurrentlyAndNothingIsLostOrDoubled(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{BatchSize: 50, HeartbeatInterval: time.Millisecond})
	s.StartHeartbeatMonitor(time.Hour, time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s.LogMetric("m", float64(i), fmt.Sprintf("g=%d", g))
				s.UpdateState(map[string]interface{}{"g": g})
				s.Heartbeat()
				_ = s.Stats()
			}
		}(g)
	}
	wg.Wait()
	if err := s.Close(timeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(server.records("metric")); n != 1600 {
		t.Fatalf("%d of 1600 metrics", n)
	}
	seqs := map[int64]bool{}
	for _, rec := range server.records("") {
		if seqs[rec.seq()] {
			t.Fatalf("seq %d twice", rec.seq())
		}
		seqs[rec.seq()] = true
	}
}

func TestTwoWritersOnOneSessionDoNotCollide(t *testing.T) {
	server := newIngestServer(t)
	first := server.start(t, SessionOptions{HeartbeatInterval: -1})
	first.LogEvent("first", nil)
	if err := first.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	second := server.start(t, SessionOptions{ID: first.ID(), HeartbeatInterval: -1})
	second.LogEvent("second", nil)
	if err := second.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if stats := second.Stats(); stats.Duplicates != 0 {
		t.Fatalf("the second writer's records were taken for the first's: %+v", stats)
	}
	var seqs []int64
	for _, rec := range server.records("") {
		seqs = append(seqs, rec.seq())
	}
	if len(seqs) != 4 || !sort.SliceIsSorted(seqs, func(i, j int) bool { return seqs[i] < seqs[j] }) {
		t.Fatalf("seqs %v", seqs)
	}
}

func TestDetailsFlushesThenReadsTheSession(t *testing.T) {
	server := newIngestServer(t)
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	s.LogEvent("e", nil)
	// The fake server answers GET with 404: what matters is that it was flushed first.
	_, err := s.Details(timeout(t, 5*time.Second))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Details: %v", err)
	}
	if len(server.events("e")) != 1 {
		t.Fatal("Details read before flushing")
	}
	if s.Client().BaseURL != server.srv.URL {
		t.Fatal(s.Client().BaseURL)
	}
}

func TestStartSessionRefusesInvalidOptionsOnly(t *testing.T) {
	if _, err := NewClient("ftp://x").StartSession(SessionOptions{}); err == nil || !strings.Contains(err.Error(), "http(s)://") {
		t.Fatalf("a bad URL: %v", err)
	}
	if _, err := NewClient("http://127.0.0.1:1").StartSession(SessionOptions{ID: "not-a-uuid"}); err == nil || !strings.Contains(err.Error(), "UUID") {
		t.Fatalf("a bad id: %v", err)
	}
	t.Setenv("DATACAT_URL", "http://127.0.0.1:1/")
	t.Setenv("DATACAT_TOKEN", "from-env")
	s, err := StartSession(SessionOptions{ID: "0f0e8a5e-8c0b-4c55-9a4e-0d6b4d3f1a2b", HeartbeatInterval: -1, ErrorLog: log.New(&lockedBuffer{}, "", 0)})
	if err != nil { // nothing listens there: still no error, nothing waits
		t.Fatal(err)
	}
	if s.ID() != "0f0e8a5e-8c0b-4c55-9a4e-0d6b4d3f1a2b" || s.Client().BaseURL != "http://127.0.0.1:1" || s.Client().Token != "from-env" {
		t.Fatalf("%s %+v", s.ID(), s.Client())
	}
	_ = s.Close(timeout(t, 50*time.Millisecond))
}

func TestHeldRecordsAreSentWhenTheOfflinePeriodEndsWithoutAFlush(t *testing.T) {
	server := newIngestServer(t)
	server.setScript(func(n int, _ []wireRecord) answer {
		if n < 2 {
			return answer{status: http.StatusInternalServerError}
		}
		return answer{}
	})
	s := server.start(t, SessionOptions{MaxAttempts: 1, HeartbeatInterval: -1})
	s.LogEvent("e", nil)
	waitFor(t, "the records, sent again by the sender alone", func() bool { return s.Stats().Sent == 2 })
	if n := len(server.events("e")); n != 1 {
		t.Fatalf("%d events stored", n)
	}
	if stats := s.Stats(); stats.Dropped != 0 || stats.Batches != 1 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestALongRetryAfterIsWaitedOfflineWithoutProbing(t *testing.T) {
	server := newIngestServer(t)
	server.setScript(func(int, []wireRecord) answer {
		return answer{status: http.StatusTooManyRequests, header: map[string]string{"Retry-After": "30"}}
	})
	s := server.start(t, SessionOptions{HeartbeatInterval: -1})
	waitFor(t, "the first post", func() bool { return len(server.posted()) == 1 })
	s.LogEvent("e", nil)
	if err := s.Flush(timeout(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush: %v", err)
	}
	if n := len(server.posted()); n != 1 {
		t.Fatalf("%d posts while the server asked to wait 30 s", n)
	}
	if stats := s.Stats(); stats.Retries != 0 || !strings.Contains(stats.LastError, "HTTP 429") {
		t.Fatalf("stats %+v", stats)
	}
}

func TestTheCausesOfALongChainAreBounded(t *testing.T) {
	var chain error = errors.New("root")
	for i := 0; i < 50; i++ {
		chain = fmt.Errorf("%d: %w", i, chain)
	}
	if n := len(causesOf(chain)); n != maxCauses {
		t.Fatalf("%d causes", n)
	}
}
