package datacat

import (
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of StartHeartbeatMonitor.
const (
	DefaultHangTimeout   = 60 * time.Second
	DefaultCheckInterval = 5 * time.Second
)

// hangMonitor notices when the program stops calling Heartbeat: past the timeout it
// logs application_appears_hung once, with every goroutine's stack; the next
// heartbeat logs application_recovered with how long the hang lasted.
type hangMonitor struct {
	session        *LiveSession
	timeout, check time.Duration
	mu             sync.Mutex
	last           time.Time
	hung           bool
	stop, done     chan struct{}
	checks         atomic.Int64 // for tests: how many checks were made
}

func (m *hangMonitor) run() {
	defer close(m.done)
	ticker := time.NewTicker(m.check)
	defer ticker.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-ticker.C:
			m.inspect()
			m.checks.Add(1)
		}
	}
}

func (m *hangMonitor) inspect() {
	m.mu.Lock()
	silent := time.Since(m.last)
	if m.hung || silent <= m.timeout {
		m.mu.Unlock()
		return
	}
	m.hung = true
	m.mu.Unlock()
	m.session.LogEvent("application_appears_hung", map[string]interface{}{
		"seconds_since_heartbeat": round3(silent.Seconds()),
		"timeout":                 m.timeout.Seconds(),
		"pid":                     os.Getpid(),
		"goroutines":              runtime.NumGoroutine(),
		"threads":                 goroutineStacks(),
	})
}

func (m *hangMonitor) beat() {
	now := time.Now()
	m.mu.Lock()
	began, wasHung := m.last, m.hung
	m.last, m.hung = now, false
	m.mu.Unlock()
	if wasHung {
		m.session.LogEvent("application_recovered", map[string]interface{}{
			"hang_duration": round3(now.Sub(began).Seconds()),
		})
	}
}

func round3(x float64) float64 {
	return math.Round(x*1000) / 1000
}

// Heartbeat tells the hang monitor (if one runs) that the program is alive; after
// a hang it logs application_recovered. Cheap: call it from the main loop.
func (s *LiveSession) Heartbeat() {
	if m := s.monitor.Load(); m != nil {
		m.beat()
	}
}

// StartHeartbeatMonitor watches for hangs: when Heartbeat has not been called for
// timeout (DefaultHangTimeout when zero), checked every checkInterval
// (DefaultCheckInterval when zero), it logs application_appears_hung once with
// every goroutine's stack, and the server shows the session hung until the next
// Heartbeat logs application_recovered. The clock starts now. A monitor already
// running is replaced.
func (s *LiveSession) StartHeartbeatMonitor(timeout, checkInterval time.Duration) {
	s.monitorMu.Lock()
	defer s.monitorMu.Unlock()
	if s.ended.Load() {
		return
	}
	s.stopMonitor()
	m := &hangMonitor{
		session: s,
		timeout: orDuration(timeout, DefaultHangTimeout),
		check:   orDuration(checkInterval, DefaultCheckInterval),
		last:    time.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.monitor.Store(m)
	go m.run()
}

// StopHeartbeatMonitor stops the hang monitor, if one runs, and waits for it.
func (s *LiveSession) StopHeartbeatMonitor() {
	s.monitorMu.Lock()
	defer s.monitorMu.Unlock()
	s.stopMonitor()
}

func (s *LiveSession) stopMonitor() {
	if m := s.monitor.Swap(nil); m != nil {
		close(m.stop)
		<-m.done
	}
}
