package datacat

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

const (
	// maxFrames bounds a traceback; maxCauses the wrapped errors listed.
	maxFrames = 100
	maxCauses = 20
	// maxStacksBytes bounds the goroutine stacks of a hang event (the server refuses
	// event data past 1 MB by default).
	maxStacksBytes = 512 << 10
)

// errorData is the data of an "exception" event for err: its type and message, the
// stack where it was logged as traceback lines, the errors it wraps, then extra.
func errorData(err error, skip int, extra map[string]interface{}) map[string]interface{} {
	data := map[string]interface{}{
		"type":      fmt.Sprintf("%T", err),
		"message":   err.Error(),
		"traceback": callerStack(skip+1, false),
	}
	if causes := causesOf(err); len(causes) > 0 {
		data["causes"] = causes
	}
	return merge(data, extra)
}

// panicData is the data of an "exception" event for a recovered panic: type
// "panic" (so that panics group together), the value's own type as value_type.
func panicData(value interface{}, skip int) map[string]interface{} {
	data := map[string]interface{}{
		"type":       "panic",
		"message":    fmt.Sprint(value),
		"traceback":  callerStack(skip+1, true),
		"value_type": fmt.Sprintf("%T", value),
	}
	if err, ok := value.(error); ok {
		if causes := causesOf(err); len(causes) > 0 {
			data["causes"] = causes
		}
	}
	return data
}

func merge(data, extra map[string]interface{}) map[string]interface{} {
	for key, value := range extra {
		data[key] = value
	}
	return data
}

// causesOf lists the errors err wraps (errors.Unwrap, and Unwrap() []error), depth
// first, as {type, message}.
func causesOf(err error) []map[string]interface{} {
	var causes []map[string]interface{}
	var walk func(error)
	walk = func(e error) {
		var wrapped []error
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			wrapped = u.Unwrap()
		default:
			if next := errors.Unwrap(e); next != nil {
				wrapped = []error{next}
			}
		}
		for _, next := range wrapped {
			if next == nil || len(causes) >= maxCauses {
				continue
			}
			causes = append(causes, map[string]interface{}{
				"type": fmt.Sprintf("%T", next), "message": next.Error(),
			})
			walk(next)
		}
	}
	walk(err)
	return causes
}

// callerStack is the calling goroutine's stack, most recent call first, one line
// per frame ("pkg.Func\n\tfile.go:12\n"), starting skip frames above its caller.
// Frames of the runtime are left out, as Go's own tracebacks do. fromPanic drops
// everything up to the panic too, so that a recovered panic's stack starts where it
// panicked.
func callerStack(skip int, fromPanic bool) []string {
	pcs := make([]uintptr, maxFrames)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(skip+2, pcs)])
	lines := []string{}
	for {
		frame, more := frames.Next()
		switch {
		case fromPanic && frame.Function == "runtime.gopanic":
			lines = lines[:0] // the deferred calls that led here
		case frame.Function != "" && !strings.HasPrefix(frame.Function, "runtime."):
			lines = append(lines, fmt.Sprintf("%s\n\t%s:%d\n", frame.Function, frame.File, frame.Line))
		}
		if !more {
			return lines
		}
	}
}

// goroutineStacks is the stack of every goroutine but the caller's (the hang
// monitor's), as the hang event's "threads": {name, ident, stack}, the shape of the
// Python client's threads. Bounded in size: past it, a last entry says how many
// goroutines were left out.
func goroutineStacks() []map[string]interface{} {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 8<<20 {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	blocks := strings.Split(strings.TrimSpace(string(buf)), "\n\n")
	var threads []map[string]interface{}
	size, left := 0, 0
	for _, block := range blocks[1:] { // the first is the caller's own goroutine
		if size += len(block); size > maxStacksBytes {
			left++
			continue
		}
		threads = append(threads, goroutineEntry(block))
	}
	if left > 0 {
		threads = append(threads, map[string]interface{}{
			"name":  fmt.Sprintf("%d more goroutines (left out)", left),
			"stack": []string{},
		})
	}
	return threads
}

// goroutineEntry reads one goroutine of runtime.Stack's text: a header
// ("goroutine 7 [chan receive]:"), then a function line and a location line
// ("\tfile.go:12 +0x1d") per frame.
func goroutineEntry(block string) map[string]interface{} {
	lines := strings.Split(block, "\n")
	name := strings.TrimSuffix(lines[0], ":")
	entry := map[string]interface{}{"name": name}
	if fields := strings.Fields(name); len(fields) > 1 {
		if id, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
			entry["ident"] = id
		}
	}
	stack := []string{}
	for _, line := range lines[1:] {
		if strings.HasPrefix(line, "\t") && len(stack) > 0 {
			stack[len(stack)-1] += line + "\n"
			continue
		}
		stack = append(stack, line+"\n")
	}
	entry["stack"] = stack
	return entry
}
