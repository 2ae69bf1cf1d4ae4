package datacat

import (
	"bytes"
	"encoding/json"
	"time"
)

// Session is a session as the server returns it: its state, events and metrics.
// The first fields and their JSON tags are those of the original Go client.
type Session struct {
	ID        string                 `json:"id"`                 // the session's UUID
	CreatedAt time.Time              `json:"created_at"`         // when it started
	UpdatedAt time.Time              `json:"updated_at"`         // when it last changed
	EndedAt   *time.Time             `json:"ended_at,omitempty"` // when it ended; nil while it runs
	Active    bool                   `json:"active"`             // not ended
	State     map[string]interface{} `json:"state"`              // the current, deep-merged state
	Events    []Event                `json:"events"`             // oldest first
	Metrics   []Metric               `json:"metrics"`            // oldest first

	// Fields the DataCat server adds to the original service's answer.

	Name    string            `json:"name,omitempty"`    // what the session is
	Product string            `json:"product,omitempty"` // the program it ran
	Version string            `json:"version,omitempty"` // the program's version
	Labels  map[string]string `json:"labels,omitempty"`  // key=value labels
	// Status is "running", "ended", "hung" or "crashed" (silent past its heartbeats).
	Status string `json:"status,omitempty"`
}

// Event is an event of a session. An error or panic is an event named "exception"
// whose data holds "type", "message" and "traceback" (a list of lines).
type Event struct {
	Timestamp time.Time              `json:"timestamp"` // when it was logged
	Name      string                 `json:"name"`      // what happened
	Data      map[string]interface{} `json:"data"`      // what was logged with it
	// RawData is the event's data exactly as the server sent it. Data is nil when
	// that is not a JSON object (a number, a list: other clients may log those).
	RawData json.RawMessage `json:"-"`
}

// eventFields is Event without its methods, with data left undecoded.
type eventFields struct {
	Timestamp time.Time       `json:"timestamp"`
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data"`
}

// UnmarshalJSON reads an event whatever its data: an object fills Data, and every
// value is kept in RawData.
func (e *Event) UnmarshalJSON(b []byte) error {
	var fields eventFields
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	*e = Event{Timestamp: fields.Timestamp, Name: fields.Name}
	raw := bytes.TrimSpace(fields.Data)
	if len(raw) == 0 {
		return nil
	}
	e.RawData = append(json.RawMessage(nil), raw...)
	if raw[0] == '{' {
		return json.Unmarshal(raw, &e.Data)
	}
	return nil
}

// MarshalJSON writes Data, or RawData when Data is nil, so that an event read from
// the server is written back unchanged.
func (e Event) MarshalJSON() ([]byte, error) {
	fields := eventFields{Timestamp: e.Timestamp, Name: e.Name, Data: e.RawData}
	if e.Data != nil || len(e.RawData) == 0 {
		data, err := json.Marshal(e.Data)
		if err != nil {
			return nil, err
		}
		fields.Data = data
	}
	return json.Marshal(fields)
}

// Metric is a metric value of a session.
type Metric struct {
	Timestamp time.Time `json:"timestamp"`      // when it was logged
	Name      string    `json:"name"`           // what was measured
	Value     float64   `json:"value"`          // the value
	Tags      []string  `json:"tags,omitempty"` // such as "host=a"
	// Unit ("ms", "bytes") and Kind ("gauge", "counter"), when the server keeps them.
	Unit string `json:"unit,omitempty"`
	Kind string `json:"kind,omitempty"`
}

// MetricOptions are the optional parts of a metric value.
type MetricOptions struct {
	// Tags such as "host=a" or "route=/checkout".
	Tags []string
	// Unit of the value, such as "ms", "s", "bytes" or "percent".
	Unit string
	// Kind is "gauge" (a level; the default when empty) or "counter" (a count).
	Kind string
}
