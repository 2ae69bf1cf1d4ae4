//go:build go1.20

package datacat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTheCausesOfAnErrorThatWrapsSeveral(t *testing.T) {
	err := errors.Join(errors.New("a"), fmt.Errorf("b: %w", errors.New("c")))
	var messages []string
	for _, cause := range causesOf(err) {
		messages = append(messages, cause["message"].(string))
	}
	if strings.Join(messages, ",") != "a,b: c,c" {
		t.Fatalf("causes %v", messages)
	}
}
