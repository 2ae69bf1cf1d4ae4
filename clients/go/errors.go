package datacat

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotFound matches (with errors.Is) an APIError for HTTP 404: the server does
	// not know the session.
	ErrNotFound = errors.New("datacat: not found")
	// ErrDropped is wrapped by what Flush and Close return when records were given up
	// (the queue was full, the server stayed down, or it refused them).
	ErrDropped = errors.New("datacat: records dropped")
	// ErrClosed is wrapped by what Flush returns once the LiveSession is closed.
	ErrClosed = errors.New("datacat: session closed")
)

// maxDetail bounds how much of an error answer an APIError keeps.
const maxDetail = 500

// APIError is an answer of the server that is not a 2xx.
type APIError struct {
	Method     string // of the request, such as "POST"
	Path       string // of the request, such as "/api/sessions"
	StatusCode int    // of the answer, such as 404
	// Detail is the server's explanation: the "detail" of its JSON error body, else
	// the start of the body, else the HTTP status text.
	Detail string
	// RetryAfter is how long the server asked the client to wait (Retry-After, or
	// RateLimit-Reset), zero when it did not say.
	RetryAfter time.Duration
}

// Error says what was asked, the status and the server's detail.
func (e *APIError) Error() string {
	return fmt.Sprintf("datacat: %s %s: HTTP %d: %s", e.Method, e.Path, e.StatusCode, e.Detail)
}

// Is reports whether target is ErrNotFound and the status is 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// retryable reports whether sending the same request again may succeed.
func (e *APIError) retryable() bool {
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	}
	return e.StatusCode >= 500
}

func newAPIError(method, path string, resp *http.Response, body []byte) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: resp.StatusCode, Detail: detail(body)}
	if e.Detail == "" {
		e.Detail = http.StatusText(resp.StatusCode)
	}
	wait, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !ok {
		wait, ok = parseRetryAfter(resp.Header.Get("RateLimit-Reset"), time.Now())
	}
	if ok {
		e.RetryAfter = wait
	}
	return e
}

// detail is the "detail" of a JSON error body, else the start of the body as text.
func detail(body []byte) string {
	var answer struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &answer) == nil && len(answer.Detail) > 0 {
		var text string
		if json.Unmarshal(answer.Detail, &text) == nil {
			return text
		}
		return string(answer.Detail)
	}
	text := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	if len(text) > maxDetail {
		text = text[:maxDetail]
	}
	return text
}

// parseRetryAfter reads a Retry-After value: seconds, or an HTTP date.
func parseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if seconds, err := strconv.ParseFloat(value, 64); err == nil {
		if seconds < 0 || seconds > 1e6 || seconds != seconds {
			return 0, false
		}
		return time.Duration(seconds * float64(time.Second)), true
	}
	when, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	if wait := when.Sub(now); wait > 0 {
		return wait, true
	}
	return 0, true
}
