package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	vErrors "github.com/pb33f/libopenapi-validator/errors"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

const specPath = "../../docs/openapi.yaml"

// loadSpec reads docs/openapi.yaml into libopenapi's model and a
// validator of requests and responses in strict mode: a property or
// header a response has and the document does not declare is an error.
func loadSpec(t *testing.T, raw []byte) (*v3.Document, validator.Validator) {
	t.Helper()
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithStrictMode(), config.WithFormatAssertions(),
		// Generic HTTP headers, which the document does not repeat on
		// every response.
		config.WithStrictIgnoredHeadersExtra("last-modified", "accept-ranges", "vary", "x-content-type-options",
			"referrer-policy", "content-security-policy", "permissions-policy", "access-control-allow-origin",
			"cross-origin-resource-policy", "x-typescript-types", "upgrade", "sec-websocket-accept"),
		// An event's details are its kind's (docs/protocol.md).
		config.WithStrictIgnorePaths("$.body.events[*].details.**"))
	if len(errs) > 0 {
		t.Fatalf("docs/openapi.yaml: %v", errs)
	}
	return &m.Model, v
}

func validationText(errs []*vErrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.ValidationType, e.Message)
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n    %s: %s", s.FieldPath, s.Reason)
		}
	}
	return b.String()
}

// TestOpenAPIDocument: docs/openapi.yaml is a valid OpenAPI 3.1 document
// by the validator library's copy of the specification's schema, and the
// check has teeth: the document broken in a few ways fails it.
func TestOpenAPIDocument(t *testing.T) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("openapi: 3.1.")) {
		t.Errorf("docs/openapi.yaml does not start with openapi: 3.1.x")
	}
	doc, v := loadSpec(t, raw)
	if ok, errs := v.ValidateDocument(); !ok {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI document:%s", validationText(errs))
	}
	// The Error schema's codes are the APIs' (docs/http.md lists them
	// too; TestCodesDocumented keeps that list in step).
	enum := map[string]bool{}
	for _, n := range doc.Components.Schemas.GetOrZero("Error").Schema().Properties.GetOrZero("code").Schema().Enum {
		enum[n.Value] = true
	}
	for code := range httpapi.Codes() {
		if !enum[code] {
			t.Errorf("code %s is not in docs/openapi.yaml's Error schema", code)
		}
		delete(enum, code)
	}
	for code := range enum {
		t.Errorf("docs/openapi.yaml's Error schema lists %s, which no API answers", code)
	}
	for name, broken := range map[string][]string{
		"a response without its description": {`"200": {description: the page,`, `"200": {summary: the page,`},
		"an unknown parameter location":      {`in: query, required: true`, `in: body, required: true`},
		"an unknown security scheme type":    {`bearer: {type: http,`, `bearer: {type: token,`},
	} {
		t.Run(name, func(t *testing.T) {
			b := bytes.Replace(raw, []byte(broken[0]), []byte(broken[1]), 1)
			if bytes.Equal(b, raw) {
				t.Fatalf("%q is not in docs/openapi.yaml", broken[0])
			}
			doc, err := libopenapi.NewDocument(b)
			if err != nil {
				return // refused as a document at all
			}
			v, errs := validator.NewValidator(doc)
			if len(errs) > 0 {
				return
			}
			if ok, _ := v.ValidateDocument(); ok {
				t.Error("the broken document passes validation")
			}
		})
	}
}

// specPattern is the spec path of a registered ServeMux pattern's path:
// "/sdk/" (a subtree) is "/sdk/{file}", "/{$}" is "/".
func specPattern(path string) string {
	path = strings.TrimSuffix(path, "{$}")
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "{file}"
	}
	return path
}

// specOps lists the document's operations as "METHOD /path".
func specOps(doc *v3.Document) map[string]*v3.Operation {
	ops := map[string]*v3.Operation{}
	for path, item := range doc.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

// TestOpenAPIRoutes: every route the node registers is an operation of
// docs/openapi.yaml, and every operation there is a registered route.
func TestOpenAPIRoutes(t *testing.T) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := loadSpec(t, raw)
	ops := specOps(doc)
	n := newTestNode(t)
	served := map[string]bool{}
	for _, rt := range n.routes.List() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		op := method + " " + specPattern(path)
		served[op] = true
		if ops[op] == nil {
			t.Errorf("%s is served but docs/openapi.yaml has no operation %s", rt.Pattern, op)
		}
	}
	for op := range ops {
		if !served[op] {
			t.Errorf("docs/openapi.yaml documents %s, which the node does not serve", op)
		}
	}
}

// contractCase is one real request of TestOpenAPIContract: the
// operation it exercises ("GET /v1/rooms/{room}"), the status it must be
// answered with and the document's named example it stands for ("" for
// a response documented without one).
type contractCase struct {
	op      string
	status  int
	example string
	path    string // concrete, with the query
	token   string
	body    any
	header  map[string]string
}

// documented is "METHOD /path status example" of a case or an example.
func documented(op string, status int, example string) string {
	return fmt.Sprintf("%s %d %s", op, status, example)
}

// TestOpenAPIContract: a node answers as docs/openapi.yaml says. For
// every named example of a response (status and body) a real request to
// a running node is made, and its answer (status, headers, body) is
// validated against the document's schema of that operation and status;
// the example itself is validated the same way, an error's code must be
// the example's and a text answer its text. Every operation of the
// document is called at least once, every guarded one also without a
// token (401 token_missing) and with a student's (403 forbidden).
func TestOpenAPIContract(t *testing.T) {
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, v := loadSpec(t, raw)
	ops := specOps(doc)

	// A room with a finished recording (exam-v, alice) and a live one
	// (exam-1: a proctor, bob and carol).
	srv, _ := recordAlice(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.stderr.String())
		}
	})
	admin := adminToken(t)
	var m *record.Manifest
	testclient.Eventually(t, 10*time.Second, "alice's finished recording", func() bool {
		code, body := api(t, http.MethodGet, srv.base+"/v1/rooms/exam-v/recordings", admin, nil)
		rs, _ := body["recordings"].([]any)
		if code != http.StatusOK || len(rs) != 1 {
			return false
		}
		b, _ := json.Marshal(rs[0])
		m = &record.Manifest{}
		return json.Unmarshal(b, m) == nil && !m.Ended.IsZero()
	})
	if len(m.Files) == 0 {
		t.Fatalf("alice's manifest lists no file: %+v", m)
	}
	ws := wsURL(srv.base)
	testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	testclient.Join(t, ws, secret, "exam-1", "bob", room.RoleStudent)
	testclient.Join(t, ws, secret, "exam-1", "carol", room.RoleStudent)
	student := testclient.Mint(t, secret, "exam-1", "bob", room.RoleStudent)
	proctor := testclient.Mint(t, secret, "exam-1", "proctor-1", room.RoleProctor)
	reviewer := testclient.Mint(t, secret, "exam-v", "rev", room.RoleReviewer)

	recording := "/v1/rooms/exam-v/recordings/" + m.Session + "/"
	fill := strings.NewReplacer("{room}", "exam-1", "{identity}", "bob", "{session}", m.Session, "{file}", m.Files[0].Name)
	var cases []contractCase
	// Every guarded operation refuses a missing token and a student's.
	for _, op := range slices.Sorted(func(yield func(string) bool) {
		for op := range ops {
			if !yield(op) {
				return
			}
		}
	}) {
		codes := ops[op].Responses.Codes
		if codes.GetOrZero("401") == nil {
			continue
		}
		method, path, _ := strings.Cut(op, " ")
		cases = append(cases, contractCase{op: op, status: 401, example: "token_missing", path: fill.Replace(path)})
		if codes.GetOrZero("403") != nil {
			cases = append(cases, contractCase{op: method + " " + path, status: 403, example: "forbidden", path: fill.Replace(path), token: student})
		}
	}
	in := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cases = append(cases, []contractCase{
		{op: "GET /", status: 200, example: "about", path: "/"},
		{op: "GET /healthz", status: 200, example: "ok", path: "/healthz"},
		{op: "GET /readyz", status: 200, example: "ready", path: "/readyz"},
		{op: "GET /capacity", status: 200, example: "idle", path: "/capacity"},
		{op: "GET /metrics", status: 200, path: "/metrics"},
		{op: "GET /student", status: 200, path: "/student"},
		{op: "GET /proctor", status: 200, path: "/proctor"},
		{op: "GET /review", status: 200, path: "/review"},
		{op: "GET /sdk/{file}", status: 200, path: "/sdk/invigil.js"},
		{op: "GET /sdk/{file}", status: 200, path: "/sdk/invigil.d.ts"},
		{op: "GET /static/{file}", status: 200, path: "/static/student.js"},
		{op: "GET /static/{file}", status: 200, path: "/static/invigil.css"},
		{op: "GET /static/{file}", status: 200, path: "/static/favicon.svg"},
		{op: "GET /v1/rtc", status: 101, path: "/v1/rtc"},
		{op: "GET /v1/recordings/keys", status: 200, example: "keys", path: "/v1/recordings/keys"},
		{op: "GET /v1/placement", status: 200, example: "placed", path: "/v1/placement?room=exam-1", token: admin},
		{op: "GET /v1/placement", status: 400, example: "malformed", path: "/v1/placement", token: admin},
		{op: "POST /v1/webhooks/dead-letters/retry", status: 404, example: "no_webhook", path: "/v1/webhooks/dead-letters/retry", token: admin},
		{op: "GET /v1/rooms", status: 200, example: "rooms", path: "/v1/rooms", token: admin},
		{op: "GET /v1/rooms/{room}", status: 200, example: "room", path: "/v1/rooms/exam-1", token: admin},
		{op: "GET /v1/rooms/{room}", status: 200, example: "room", path: "/v1/rooms/exam-1", token: proctor},
		{op: "GET /v1/rooms/{room}", status: 404, example: "room_not_found", path: "/v1/rooms/no-such-room", token: admin},
		{op: "GET /v1/rooms/{room}/events", status: 200, example: "events", path: "/v1/rooms/exam-1/events", token: admin},
		{op: "GET /v1/rooms/{room}/events", status: 200, example: "events", path: "/v1/rooms/exam-1/events?after=1&limit=2", token: proctor},
		{op: "GET /v1/rooms/{room}/recordings", status: 200, example: "recordings", path: "/v1/rooms/exam-v/recordings", token: admin},
		{op: "GET /v1/rooms/{room}/recordings", status: 200, example: "recordings", path: "/v1/rooms/exam-v/recordings", token: reviewer},
		{op: "GET /v1/rooms/{room}/recordings/{session}/{file}", status: 200, path: recording + m.Files[0].Name, token: admin},
		{op: "GET /v1/rooms/{room}/recordings/{session}/{file}", status: 200, path: recording + m.Session + record.ManifestSuffix, token: admin},
		{op: "GET /v1/rooms/{room}/recordings/{session}/{file}", status: 206, path: recording + m.Files[0].Name, token: admin,
			header: map[string]string{"Range": "bytes=0-99"}},
		{op: "GET /v1/rooms/{room}/recordings/{session}/{file}", status: 404, example: "recording_not_found",
			path: "/v1/rooms/exam-v/recordings/nosuch/" + m.Files[0].Name, token: admin},
		{op: "POST /v1/rooms/{room}/messages", status: 200, example: "sent", path: "/v1/rooms/exam-1/messages", token: admin,
			body: map[string]any{"to": "bob", "text": "Ten minutes left."}},
		{op: "POST /v1/rooms/{room}/messages", status: 200, example: "to_all", path: "/v1/rooms/exam-1/messages", token: admin,
			body: map[string]any{"text": "Pens down in five minutes."}},
		{op: "POST /v1/rooms/{room}/messages", status: 404, example: "room_not_found", path: "/v1/rooms/no-such-room/messages", token: admin,
			body: map[string]any{"text": "Ten minutes left."}},
		{op: "POST /v1/revocations", status: 200, example: "revoked", path: "/v1/revocations", token: admin,
			body: map[string]any{"identity": "carol", "room": "exam-1", "until": in}},
		{op: "POST /v1/revocations", status: 400, example: "malformed", path: "/v1/revocations", token: admin,
			body: map[string]any{"identity": "carol", "room": "exam-1", "until": "2000-01-01T00:00:00Z"}},
		{op: "GET /v1/revocations", status: 200, example: "revocations", path: "/v1/revocations", token: admin},
		{op: "DELETE /v1/revocations", status: 200, example: "lifted", path: "/v1/revocations?identity=carol&room=exam-1", token: admin},
		{op: "DELETE /v1/revocations", status: 404, example: "revocation_not_found", path: "/v1/revocations?identity=carol&room=exam-1", token: admin},
		{op: "POST /v1/rooms/{room}/participants/{identity}/end", status: 404, example: "participant_not_found",
			path: "/v1/rooms/exam-1/participants/nobody/end", token: admin, body: map[string]any{"reason": "left early"}},
		{op: "POST /v1/rooms/{room}/participants/{identity}/end", status: 200, example: "ended",
			path: "/v1/rooms/exam-1/participants/bob/end", token: admin, body: map[string]any{"reason": "left early"}},
		{op: "POST /v1/node/drain", status: 200, example: "draining", path: "/v1/node/drain", token: admin},
		{op: "GET /readyz", status: 503, example: "draining", path: "/readyz"},
		{op: "DELETE /v1/node/drain", status: 200, example: "ready", path: "/v1/node/drain", token: admin},
		{op: "DELETE /v1/rooms/{room}", status: 200, example: "not_open", path: "/v1/rooms/exam-2", token: admin},
		{op: "DELETE /v1/rooms/{room}", status: 200, example: "ended", path: "/v1/rooms/exam-1", token: admin},
	}...)

	// The cases cover the document: every operation, every named
	// example; and stand for nothing it does not say.
	examples := map[string]*v3.MediaType{} // documented(op, status, example): its media type
	for op, o := range ops {
		for code, resp := range o.Responses.Codes.FromOldest() {
			var status int
			fmt.Sscan(code, &status)
			for _, mt := range resp.Content.FromOldest() {
				for name := range mt.Examples.FromOldest() {
					examples[documented(op, status, name)] = mt
				}
			}
		}
	}
	called, exercised := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		called[c.op] = true
		exercised[documented(c.op, c.status, c.example)] = true
		if ops[c.op] == nil || ops[c.op].Responses.Codes.GetOrZero(fmt.Sprint(c.status)) == nil {
			t.Errorf("case %s %d: the document has no such operation or status", c.op, c.status)
		}
		if c.example != "" && examples[documented(c.op, c.status, c.example)] == nil {
			t.Errorf("case %s %d stands for example %q, which the document does not have", c.op, c.status, c.example)
		}
	}
	for op := range ops {
		if !called[op] {
			t.Errorf("no case calls %s", op)
		}
	}
	for ex := range examples {
		if !exercised[ex] {
			t.Errorf("no case makes the request of the example %s", ex)
		}
	}

	for _, c := range cases {
		name := fmt.Sprintf("%s %d %s", c.op, c.status, c.example)
		req, resp, body := contractCall(t, srv.base, c)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %s answered HTTP %d %.300s", name, c.path, resp.StatusCode, body)
			continue
		}
		if ok, errs := validateResponse(v, req, resp, body); !ok {
			t.Errorf("%s: the answer does not match docs/openapi.yaml:%s\n  body: %.600s", name, validationText(errs), body)
		}
		if c.token != "" && c.status < 300 {
			if ok, errs := validateRequest(v, req, c); !ok {
				t.Errorf("%s: the request does not match docs/openapi.yaml:%s", name, validationText(errs))
			}
		}
		if c.example == "" {
			continue
		}
		var want any
		if err := examples[documented(c.op, c.status, c.example)].Examples.GetOrZero(c.example).Value.Decode(&want); err != nil {
			t.Fatalf("%s: the example: %v", name, err)
		}
		if s, ok := want.(string); ok {
			if got := strings.TrimSpace(string(body)); got != s {
				t.Errorf("%s: answered %q, the example says %q", name, got, s)
			}
			continue
		}
		ex, _ := json.Marshal(want)
		if ok, errs := validateResponse(v, req, resp, ex); !ok {
			t.Errorf("%s: the example does not match its own schema:%s", name, validationText(errs))
		}
		if code, ok := want.(map[string]any)["code"]; ok {
			var got struct{ Code string }
			if json.Unmarshal(body, &got); got.Code != code {
				t.Errorf("%s: answered code %q, the example says %q", name, got.Code, code)
			}
		}
	}
}

// contractCall makes c's request and returns it, the answer and its body.
func contractCall(t *testing.T, base string, c contractCase) (*http.Request, *http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if c.body != nil {
		b, _ := json.Marshal(c.body)
		rd = bytes.NewReader(b)
	}
	method, _, _ := strings.Cut(c.op, " ")
	req, err := http.NewRequest(method, base+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if c.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.status == http.StatusSwitchingProtocols {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+c.path, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
		conn.Close(websocket.StatusNormalClosure, "")
		return req, &http.Response{StatusCode: resp.StatusCode, Header: resp.Header, Request: req}, nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, resp, body
}

// validateResponse validates an answer with body against the document.
func validateResponse(v validator.Validator, req *http.Request, resp *http.Response, body []byte) (bool, []*vErrors.ValidationError) {
	r := *resp
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return v.ValidateHttpResponse(req, &r)
}

// validateRequest validates c's request, with its body, against the
// document.
func validateRequest(v validator.Validator, req *http.Request, c contractCase) (bool, []*vErrors.ValidationError) {
	r := req.Clone(context.Background())
	if c.body != nil {
		b, _ := json.Marshal(c.body)
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return v.ValidateHttpRequestSync(r)
}
