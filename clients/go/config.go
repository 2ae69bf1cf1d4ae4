package datacat

import (
	"os"
	"strings"
)

// DefaultURL is where the client looks for the server when neither the program nor
// DATACAT_URL says (the original service's port).
const DefaultURL = "http://127.0.0.1:8080"

// resolveURL is baseURL, else $DATACAT_URL, else DefaultURL, without a trailing slash.
func resolveURL(baseURL string) string {
	if baseURL == "" {
		baseURL = os.Getenv("DATACAT_URL")
	}
	if baseURL == "" {
		baseURL = DefaultURL
	}
	return strings.TrimRight(baseURL, "/")
}
