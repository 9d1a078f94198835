package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
)

// Catalog is a small page catalog service, for the demo and the tests: it
// describes every page under /products, /blog and /help, answers 404 for
// others, and 503 while Down is set.
type Catalog struct {
	Down  atomic.Bool
	Calls atomic.Int64
}

// ServeHTTP answers GET /pages?path=<page>.
func (c *Catalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.Calls.Add(1)
	if c.Down.Load() {
		http.Error(w, "catalog down for maintenance", http.StatusServiceUnavailable)
		return
	}
	path := r.URL.Query().Get("path")
	category, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch category {
	case "products", "blog", "help":
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Page{Title: "Title of " + path, Category: category})
}
