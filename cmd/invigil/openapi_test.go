package main

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIRoutes: docs/openapi.yaml parses and describes every route
// the node registers, method and path. (It is not yet checked by an
// OpenAPI validator library, nor its examples against the server.)
func TestOpenAPIRoutes(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", doc.OpenAPI)
	}
	n := newTestNode(t)
	for _, rt := range n.routes.List() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.TrimSuffix(path, "{$}")
		if strings.HasSuffix(path, "/") && path != "/" {
			path += "{file}" // a subtree: its files
		}
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("%s is served but docs/openapi.yaml has no path %s", rt.Pattern, path)
			continue
		}
		if _, ok := ops[strings.ToLower(method)]; !ok {
			t.Errorf("%s is served but docs/openapi.yaml's %s has no %s", rt.Pattern, path, strings.ToLower(method))
		}
	}
}
