package datacat_test

import (
	"context"
	"errors"
	"log"
	"time"

	datacat "github.com/datacat/datacat/clients/go"
)

// The calls of the original Go client: one request each, errors returned.
func ExampleNewClient() {
	c := datacat.NewClient("http://127.0.0.1:8080")
	id, err := c.CreateSession()
	if err != nil {
		log.Fatal(err)
	}
	_ = c.UpdateState(id, map[string]interface{}{"window": map[string]interface{}{"theme": "dark"}})
	_ = c.LogEvent(id, "started", map[string]interface{}{"host": "a"})
	_ = c.LogMetric(id, "cpu", 41.5, []string{"host=a"})
	_ = c.EndSession(id)
	session, err := c.GetSession(id)
	if errors.Is(err, datacat.ErrNotFound) {
		log.Fatal("the server does not know the session")
	}
	log.Println(session.Status, len(session.Events))
}

// A LiveSession never blocks the program: records go in batches from a goroutine.
func ExampleStartSession() {
	s, err := datacat.StartSession(datacat.SessionOptions{Product: "shop", Version: "1.4.2"})
	if err != nil {
		log.Fatal(err) // invalid options only: nothing waited for the server
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil { // ends the session, sends what is queued
			log.Printf("datacat: %v (%+v)", err, s.Stats())
		}
	}()
	defer s.Recover() // a panic is logged with its stack, then goes on

	s.UpdateState(map[string]interface{}{"cart": map[string]interface{}{"items": 3}})
	s.LogEvent("checkout_started", map[string]interface{}{"items": 3})
	s.LogMetricWith("latency", 41.5, datacat.MetricOptions{Tags: []string{"route=/checkout"}, Unit: "ms"})

	s.StartHeartbeatMonitor(time.Minute, 5*time.Second)
	for i := 0; i < 3; i++ {
		s.Heartbeat() // in the main loop: a minute without one is a hang
	}
}

// LogError logs an error with the stack where it was logged and the errors it wraps.
func ExampleLiveSession_LogError() {
	s, err := datacat.StartSession(datacat.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := loadConfig(); err != nil {
		s.LogErrorWith(err, map[string]interface{}{"path": "/etc/shop.toml"})
	}
}

func loadConfig() (string, error) { return "", errors.New("no config") }
