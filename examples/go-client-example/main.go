// Command go-client-example records two sessions with DataCat's Go client: one with
// the plain calls of the original Go client (Client), one with the non-blocking
// LiveSession (state, events, metrics, an error, a recovered panic, a hang and its
// recovery). It reads both back and exits with 1 if anything is missing.
//
//	DATACAT_URL=http://127.0.0.1:8080 go run .
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"time"

	datacat "github.com/datacat/datacat/clients/go"
)

func main() {
	log.SetFlags(0)
	c := datacat.NewClient("") // $DATACAT_URL, else http://127.0.0.1:8080; $DATACAT_TOKEN
	seedID := seedCalls(c)
	liveID := liveSession(c)
	all, err := c.GetAllSessions()
	check(err == nil, "GetAllSessions: %v", err)
	found := 0
	for _, s := range all {
		if s.ID == seedID || s.ID == liveID {
			found++
		}
	}
	check(found == 2, "GetAllSessions lists %d of the 2 sessions", found)
	fmt.Println("[OK] both sessions are listed")
}

// seedCalls uses the calls a program written for the original Go client makes.
func seedCalls(c *datacat.Client) string {
	id, err := c.CreateSession()
	check(err == nil, "CreateSession: %v", err)
	fmt.Printf("session: %s (seed)\n", id)
	must(c.UpdateState(id, map[string]interface{}{
		"application": map[string]interface{}{"name": "go-example", "status": "starting"},
	}))
	must(c.LogEvent(id, "application_started", map[string]interface{}{"host": "localhost"}))
	must(c.UpdateState(id, map[string]interface{}{
		"application": map[string]interface{}{"status": "running"}, // deep-merged
	}))
	for i := 0; i < 5; i++ {
		must(c.LogMetric(id, "cpu_usage", 20+float64(i), []string{"app:go-example", "unit:percent"}))
	}
	must(c.LogEvent(id, "work_completed", map[string]interface{}{"iterations": 5}))
	must(c.EndSession(id))

	s, err := c.GetSession(id)
	check(err == nil, "GetSession: %v", err)
	app, _ := s.State["application"].(map[string]interface{})
	check(app["name"] == "go-example" && app["status"] == "running", "state not merged: %v", s.State)
	check(!s.Active && s.EndedAt != nil, "the session did not end")
	check(len(s.Events) == 2 && len(s.Metrics) == 5, "%d events, %d metrics", len(s.Events), len(s.Metrics))
	fmt.Printf("[OK] seed calls: active=%v events=%d metrics=%d\n", s.Active, len(s.Events), len(s.Metrics))
	return id
}

// liveSession logs through a LiveSession: nothing here waits for the server.
func liveSession(c *datacat.Client) string {
	s, err := c.StartSession(datacat.SessionOptions{
		Name:    "go-client-example",
		Product: "shop",
		Version: "1.4.2",
		Labels:  map[string]string{"lang": "go"},
		State:   map[string]interface{}{"window": map[string]interface{}{"theme": "dark"}},
	})
	check(err == nil, "StartSession: %v", err)
	fmt.Printf("session: %s (live)\n", s.ID())
	// defer s.Recover() would log a panic of main (then let it go on).
	defer s.Recover()

	s.UpdateState(map[string]interface{}{"window": map[string]interface{}{"open": []string{"cart"}}})
	s.LogEvent("checkout_started", map[string]interface{}{"items": 3})
	for i := 0; i < 10; i++ {
		s.LogMetricWith("latency", 40+float64(i), datacat.MetricOptions{Tags: []string{"route=/checkout"}, Unit: "ms"})
	}
	s.LogMetric("orders", 1, "shop=eu")

	if _, err := os.Open("/no/such/config.toml"); errors.Is(err, fs.ErrNotExist) {
		s.LogError(fmt.Errorf("loading the configuration: %w", err)) // type, message, stack, causes
	}
	fmt.Println("recovered:", guarded(s))

	// A main loop that calls Heartbeat, then stalls longer than the hang timeout.
	s.StartHeartbeatMonitor(300*time.Millisecond, 50*time.Millisecond)
	for i := 0; i < 3; i++ {
		s.Heartbeat()
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // application_appears_hung, with every goroutine's stack
	s.Heartbeat()                      // application_recovered
	s.UpdateState(map[string]interface{}{"window": map[string]interface{}{"open": []string{"cart", "pay"}}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check(s.Close(ctx) == nil, "Close: %v (%+v)", s.Close(ctx), s.Stats())
	stats := s.Stats()
	fmt.Printf("[OK] live session: %d records sent, %d duplicates, %d dropped\n", stats.Sent, stats.Duplicates, stats.Dropped)

	got, err := c.GetSession(s.ID())
	check(err == nil, "GetSession: %v", err)
	check(got.Status == "ended", "status %q", got.Status)
	names := map[string]int{}
	for _, e := range got.Events {
		names[e.Name]++
	}
	for _, name := range []string{"checkout_started", "exception", "application_appears_hung", "application_recovered"} {
		check(names[name] > 0, "no %s event in %v", name, names)
	}
	check(names["exception"] == 2, "%d exception events", names["exception"])
	check(len(got.Metrics) == 11, "%d metrics", len(got.Metrics))
	fmt.Printf("[OK] live session read back: status=%s events=%d metrics=%d\n", got.Status, len(got.Events), len(got.Metrics))
	return s.ID()
}

// guarded recovers a panic itself, logs it with its stack, and returns it as an error.
func guarded(s *datacat.LiveSession) (err error) {
	defer func() {
		if value := recover(); value != nil {
			s.LogPanic(value)
			err = fmt.Errorf("%v", value)
		}
	}()
	var counts map[string]int
	counts["x"]++ // panics: assignment to entry in nil map
	return nil
}

func must(err error) {
	check(err == nil, "%v", err)
}

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		fmt.Printf("[FAILED] "+format+"\n", args...)
		os.Exit(1)
	}
}
