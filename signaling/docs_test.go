package signaling

import (
	"slices"
	"strings"
	"testing"

	"github.com/invigil/invigil/internal/doctable"
	"github.com/invigil/invigil/room"
)

// TestMessageTypesDocumented: docs/protocol.md's table of client message
// types is the server's: the same types, each with the roles that may
// send it.
func TestMessageTypesDocumented(t *testing.T) {
	documented, err := doctable.ByCode("../docs/protocol.md", "## Client → server", 2) // `type` | who may send it
	if err != nil {
		t.Fatal(err)
	}
	for typ, roles := range ClientMessageRoles() {
		want := "anyone, as the first frame"
		if len(roles) > 0 {
			names := make([]string, len(roles))
			for i, r := range roles {
				names[i] = string(r)
			}
			want = strings.Join(names, ", ")
		}
		if row, ok := documented[typ]; !ok || row[1] != want {
			t.Errorf("%s: docs/protocol.md says %v may send it; the server lets %q", typ, row, want)
		}
	}
	for typ := range documented {
		if !slices.Contains(ClientMessageTypes(), typ) {
			t.Errorf("docs/protocol.md lists %s, which the server does not know", typ)
		}
	}
}

// TestEveryTypeHandled: no entry of the table lacks a handler, so no
// type decodes and then does nothing, and a joined session's dispatch
// of each reaches its handler or a refusal, never a silent success of
// an unhandled type.
func TestEveryTypeHandled(t *testing.T) {
	for typ, cm := range clientMessages {
		if cm.handle == nil {
			t.Errorf("%s has no handler", typ)
		}
		if !cm.first && len(cm.roles) == 0 {
			t.Errorf("%s: no role may send it", typ)
		}
		for _, r := range cm.roles {
			if r != room.RoleStudent && r != room.RoleProctor {
				t.Errorf("%s: role %s never joins media", typ, r)
			}
		}
		if len(cm.roles) < 2 && !cm.first && cm.refusal == "" {
			t.Errorf("%s: refused roles get no message", typ)
		}
	}
	s := &session{}
	s.joined.Store(true)
	s.p = &room.Participant{Role: room.RoleStudent}
	if err := s.dispatch(&Inbound{Type: "teleport"}); err == nil {
		t.Error("an unknown type dispatched without error")
	}
}
