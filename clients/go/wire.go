package datacat

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Record kinds of POST /api/ingest (datacat_client/wire.py).
const (
	kindStart     = "session_start"
	kindState     = "state"
	kindEvent     = "event"
	kindMetric    = "metric"
	kindHeartbeat = "heartbeat"
	kindEnd       = "end"
)

// record is one record of a batch: the fields of every kind, each kind using its
// own. Every record names its session and carries a sequence number; the server
// stores each (session_id, seq) once.
type record struct {
	Kind      string  `json:"kind"`
	SessionID string  `json:"session_id"`
	Seq       int64   `json:"seq"`
	Timestamp float64 `json:"timestamp"`

	// session_start (Name also: event, metric)
	Name              string            `json:"name,omitempty"`
	Product           string            `json:"product,omitempty"`
	Version           string            `json:"version,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	HeartbeatInterval *float64          `json:"heartbeat_interval,omitempty"`
	// session_start, state
	State json.RawMessage `json:"state,omitempty"`
	// event
	Data json.RawMessage `json:"data,omitempty"`
	// metric. The record's tag is "kind", so a metric's kind travels as metric_kind.
	Value      *float64 `json:"value,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Unit       string   `json:"unit,omitempty"`
	MetricKind string   `json:"metric_kind,omitempty"`
	// heartbeat
	Interval *float64 `json:"interval,omitempty"`
}

// batch is the body of POST /api/ingest.
type batch struct {
	Records []*record `json:"records"`
}

// batchAck is the server's answer to a batch, sent once it is committed.
type batchAck struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
}

// encodeBatch is the JSON of a batch of records.
func encodeBatch(records []*record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(batch{Records: records}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// unixSeconds is t as the wire wants it: Unix seconds, with microseconds.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// seconds is d in seconds, as a pointer (for optional wire fields).
func seconds(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}

// pin encodes value now, as JSON: a snapshot the caller may change afterwards.
// What JSON cannot encode (a channel, NaN) is sent as its text (fmt's %v).
func pin(value interface{}) json.RawMessage {
	if b, err := json.Marshal(value); err == nil {
		return b
	}
	b, _ := json.Marshal(fmt.Sprintf("%v", value)) // a string always encodes
	return b
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// newUUID is a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("datacat: a session id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
