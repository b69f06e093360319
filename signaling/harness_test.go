package signaling

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

const testSecret = "test-secret-0123456789abcdef0123456789"

// testServer is a whole signaling + room + sfu stack on loopback.
type testServer struct {
	url    string // ws://127.0.0.1:port/v1/rtc
	rooms  *room.Rooms
	engine *sfu.Engine
	sig    *Server
}

func newTestServer(t *testing.T, rc room.Config, opts ...func(*Config)) *testServer {
	t.Helper()
	log := testLogger(t)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := sfu.New(sfu.Config{UDP: udp, TCP: tcp, IncludeLoopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rc.Logger = log
	rooms, err := room.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Rooms: rooms, Engine: SFU(engine), Secret: []byte(testSecret), Version: "test", Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	sig, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/rtc", sig)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		rooms.Close(room.ReasonShutdown)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sig.Shutdown(ctx); err != nil {
			t.Errorf("signaling shutdown: %v", err)
		}
		hs.Close()
		engine.Close()
	})
	return &testServer{url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/rtc", rooms: rooms, engine: engine, sig: sig}
}

// testLogger logs through t, at debug level when -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// join connects a pion participant to the test server.
func (s *testServer) join(t *testing.T, roomName, identity string, role room.Role) *testclient.Client {
	t.Helper()
	return testclient.Join(t, s.url, testSecret, roomName, identity, role)
}

func mint(t *testing.T, roomName, identity string, role room.Role) string {
	t.Helper()
	return testclient.Mint(t, testSecret, roomName, identity, role)
}
