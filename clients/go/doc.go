// Package datacat is the Go client of DataCat, the test-telemetry server: sessions
// with deep-merged state, events, metrics, errors, panics, heartbeats and hang
// detection. Standard library only.
//
// Two APIs:
//
// Client makes plain, synchronous calls of the REST API, with the names, types and
// JSON tags of the original DataCat Go client (package client): a program written
// for it ports by changing its import path (and the package name, or importing
// this one as client).
//
//	c := datacat.NewClient("http://127.0.0.1:8080")
//	id, err := c.CreateSession()
//	err = c.UpdateState(id, map[string]interface{}{"status": "running"})
//	err = c.LogMetric(id, "cpu", 41.5, []string{"host=a"})
//	err = c.EndSession(id)
//
// LiveSession is for logging from a running program. Its calls never block on the
// network and never fail: each one queues a record (a bounded queue; a full queue
// drops and counts), and one goroutine sends them in batches to POST /api/ingest,
// each record numbered so that a retried batch is stored once. It retries,
// honours Retry-After, keeps what it could not send in memory (bounded) while the
// server is down, sends liveness heartbeats, and watches for hangs.
//
//	s, err := datacat.StartSession(datacat.SessionOptions{Product: "shop", Version: "1.4.2"})
//	if err != nil { ... } // only for invalid options: nothing waits for the server
//	defer s.Close(context.Background()) // ends the session, flushes (5 s at most)
//	defer s.Recover()                   // a panic is logged with its stack, then goes on
//	s.UpdateState(map[string]interface{}{"window": map[string]interface{}{"theme": "dark"}})
//	s.LogEvent("checkout_started", map[string]interface{}{"items": 3})
//	s.LogMetric("latency_ms", 41.5, "route=/checkout")
//	s.LogError(err)
//
// The server's address comes from the argument of NewClient, else DATACAT_URL, else
// http://127.0.0.1:8080; the bearer token from WithToken, else DATACAT_TOKEN.
package datacat
