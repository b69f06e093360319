package roomapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/room"
)

// Limits on what a call carries.
const (
	// maxName bounds a room name or an identity, as placement does.
	maxName = 128
	// maxText bounds a message or a reason: a few sentences, as a
	// proctor's message (docs/protocol.md).
	maxText = 2000
	// maxRevocation bounds a revocation's lifetime: a lockout is for an
	// exam season, not forever; lift it or renew it.
	maxRevocation = 366 * 24 * time.Hour
)

// Config wires the rooms API.
type Config struct {
	Rooms    *room.Rooms
	Lockouts *Lockouts
	Store    Store
	// NodeID names this node in answers.
	NodeID string
	// Directory is the cluster; nil for a node alone.
	Directory Directory
	// Client makes the calls to other nodes; nil: one with
	// forwardTimeout.
	Client *http.Client
	Logger *slog.Logger
}

// API serves the rooms API (docs/http.md, docs/openapi.yaml).
type API struct {
	rooms    *room.Rooms
	lockouts *Lockouts
	store    Store
	nodeID   string
	dir      Directory
	client   *http.Client
	log      *slog.Logger
}

// New returns the API of cfg.
func New(cfg Config) *API {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: forwardTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{rooms: cfg.Rooms, lockouts: cfg.Lockouts, store: cfg.Store, nodeID: cfg.NodeID,
		dir: cfg.Directory, client: cfg.Client, log: cfg.Logger}
}

// Register adds the API's routes to t.
func (a *API) Register(t *httpapi.Routes) {
	admin := httpapi.Admin()
	t.HandleFunc("GET /v1/rooms", admin, "live rooms with their node and counts, cluster-wide", a.list)
	t.HandleFunc("GET /v1/rooms/{room}", httpapi.AdminOrProctor(), "the room's participants, their state and connection", a.get)
	t.HandleFunc("DELETE /v1/rooms/{room}", admin, "end the exam for everyone in the room", a.end)
	t.HandleFunc("POST /v1/rooms/{room}/participants/{identity}/end", admin, "end one student on every device", a.endParticipant)
	t.HandleFunc("POST /v1/rooms/{room}/messages", admin, "a message to one student or to every student", a.message)
	t.HandleFunc("POST /v1/revocations", admin, "lock an identity out of a room or every room until a time", a.revoke)
	t.HandleFunc("GET /v1/revocations", admin, "the revocations in force", a.revocations)
	t.HandleFunc("DELETE /v1/revocations", admin, "lift a revocation", a.lift)
}

// RoomSummary is one room of GET /v1/rooms.
type RoomSummary struct {
	Room     string    `json:"room"`
	NodeID   string    `json:"node_id"`
	Students int       `json:"students"`
	Proctors int       `json:"proctors"`
	Started  time.Time `json:"started"`
}

func (a *API) localRooms() []RoomSummary {
	list := a.rooms.List()
	out := make([]RoomSummary, 0, len(list))
	for _, s := range list {
		out = append(out, RoomSummary{Room: s.Room, NodeID: a.nodeID, Students: s.Students, Proctors: s.Proctors, Started: s.Started})
	}
	return out
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	scope := r.URL.Query().Get("scope")
	if scope != "" && scope != "node" && scope != "cluster" {
		httpapi.Fail(w, httpapi.CodeMalformed, `scope is "cluster" (the default) or "node"`)
		return
	}
	if a.dir == nil || scope == "node" || r.Header.Get(ForwardedHeader) != "" {
		httpapi.WriteJSON(w, map[string]any{"rooms": a.localRooms()})
		return
	}
	rooms, unreachable, err := a.clusterRooms(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster store (Redis) cannot list the nodes; retry shortly")
		return
	}
	body := map[string]any{"rooms": rooms}
	if len(unreachable) > 0 {
		body["unreachable"] = unreachable
	}
	httpapi.WriteJSON(w, body)
}

// ParticipantView is one participant of GET /v1/rooms/{room}.
type ParticipantView struct {
	Identity   string      `json:"identity"`
	Name       string      `json:"name"`
	Role       room.Role   `json:"role"`
	Device     string      `json:"device"`
	State      string      `json:"state"`
	Tracks     []TrackView `json:"tracks"`
	Connection Connection  `json:"connection"`
}

// TrackView is one published track.
type TrackView struct {
	Kind    string `json:"kind"`
	Source  string `json:"source"`
	TrackID string `json:"track_id"`
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	a.atHolder(w, r, name, func(w http.ResponseWriter, r *http.Request) {
		sum, members, err := a.rooms.Snapshot(name)
		if errors.Is(err, room.ErrNoRoom) {
			httpapi.Fail(w, httpapi.CodeRoomNotFound, "the room is not open on any node")
			return
		}
		ps := make([]ParticipantView, 0, len(members))
		for _, m := range members {
			c, state := connection(m)
			v := ParticipantView{Identity: m.Identity, Name: m.Name, Role: m.Role, Device: m.Device, State: state,
				Tracks: []TrackView{}, Connection: c}
			for _, t := range m.Tracks {
				v.Tracks = append(v.Tracks, TrackView{Kind: t.Kind, Source: t.Source, TrackID: t.TrackID})
			}
			ps = append(ps, v)
		}
		httpapi.WriteJSON(w, map[string]any{"room": name, "node_id": a.nodeID, "started": sum.Started,
			"students": sum.Students, "proctors": sum.Proctors, "participants": ps})
	})
}

func (a *API) end(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	a.atHolder(w, r, name, func(w http.ResponseWriter, r *http.Request) {
		g, _ := httpapi.GrantOf(r)
		at := time.Now().UTC().Truncate(time.Second)
		// The marker first: from here on, no node admits an old token.
		if err := a.store.MarkEnded(r.Context(), name, at); err != nil {
			a.log.Error("room end not recorded", "room", name, "err", err)
			httpapi.Fail(w, httpapi.CodeUnavailable, "the end of the room could not be stored; nothing was ended; retry")
			return
		}
		n := a.rooms.End(name, at, g.Identity)
		httpapi.WriteJSON(w, map[string]any{"room": name, "ended": n, "ended_at": at})
	})
}

func (a *API) endParticipant(w http.ResponseWriter, r *http.Request) {
	name, identity := r.PathValue("room"), r.PathValue("identity")
	a.atHolder(w, r, name, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		if err := httpapi.ReadJSON(r, &body); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if err := checkText("reason", body.Reason, true); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		g, _ := httpapi.GrantOf(r)
		n, err := a.rooms.EndStudent(name, identity, g.Identity, body.Reason)
		if err != nil {
			writeRoomError(w, err)
			return
		}
		httpapi.WriteJSON(w, map[string]any{"room": name, "identity": identity, "ended": n})
	})
}

func (a *API) message(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("room")
	a.atHolder(w, r, name, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			To   string `json:"to"`
			Text string `json:"text"`
		}
		if err := httpapi.ReadJSON(r, &body); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if err := checkText("text", body.Text, false); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		g, _ := httpapi.GrantOf(r)
		from := g.Name
		if from == "" || from == g.Identity {
			from = "Exam administrator"
		}
		to, err := a.rooms.Message(name, body.To, body.Text, g.Identity, from)
		if err != nil {
			writeRoomError(w, err)
			return
		}
		httpapi.WriteJSON(w, map[string]any{"room": name, "to": to})
	})
}

// revocationBody is POST /v1/revocations' body.
type revocationBody struct {
	Identity string    `json:"identity"`
	Room     string    `json:"room"`
	Until    time.Time `json:"until"`
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	var body revocationBody
	raw, err := httpapi.ReadJSONKeep(r, &body)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw)) // for a forward to the room's node
	if err := checkName("identity", body.Identity); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := checkName("room", body.Room); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	now := time.Now()
	if !body.Until.After(now) || body.Until.Sub(now) > maxRevocation {
		httpapi.Fail(w, httpapi.CodeMalformed, "until must be an RFC 3339 time in the future, at most 366 days away")
		return
	}
	serve := func(w http.ResponseWriter, r *http.Request) {
		g, _ := httpapi.GrantOf(r)
		rev := Revocation{Identity: body.Identity, Room: body.Room, Until: body.Until.UTC(), By: g.Identity, Created: now.UTC()}
		if err := a.store.Revoke(r.Context(), rev); err != nil {
			a.log.Error("revocation not stored", "identity", rev.Identity, "room", rev.Room, "err", err)
			httpapi.Fail(w, httpapi.CodeUnavailable, "the revocation could not be stored; nothing was revoked; retry")
			return
		}
		a.lockouts.remember(rev)
		rooms := a.rooms.Revoke(rev.Room, rev.Identity, g.Identity, rev.Until, true)
		a.log.Info("identity revoked", "identity", rev.Identity, "room", rev.Room, "until", rev.Until, "admin", g.Identity, "rooms", rooms)
		httpapi.WriteJSON(w, map[string]any{"identity": rev.Identity, "room": rev.Room, "until": rev.Until,
			"by": rev.By, "created": rev.Created, "rooms": rooms})
	}
	if body.Room == AllRooms {
		// Every node cuts its own sessions off within RefreshInterval.
		serve(w, r)
		return
	}
	a.atHolder(w, r, body.Room, serve)
}

func (a *API) revocations(w http.ResponseWriter, r *http.Request) {
	rs, err := a.store.Revocations(r.Context())
	if err != nil {
		httpapi.Fail(w, httpapi.CodeUnavailable, "the revocations could not be read; retry shortly")
		return
	}
	httpapi.WriteJSON(w, map[string]any{"revocations": rs})
}

func (a *API) lift(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	identity, roomName := q.Get("identity"), q.Get("room")
	if err := checkName("identity", identity); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := checkName("room", roomName); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	err := a.store.Lift(r.Context(), identity, roomName)
	switch {
	case errors.Is(err, ErrNoRevocation):
		httpapi.Fail(w, httpapi.CodeRevocationNotFound, "no revocation of this identity for this room is in force")
		return
	case err != nil:
		httpapi.Fail(w, httpapi.CodeUnavailable, "the revocation could not be lifted; retry shortly")
		return
	}
	a.lockouts.forget(identity, roomName)
	g, _ := httpapi.GrantOf(r)
	if roomName != AllRooms {
		a.rooms.Record(roomName, room.EventAdminAction, g.Identity, identity, map[string]any{"action": room.ActionLift, "room": roomName})
	}
	a.log.Info("revocation lifted", "identity", identity, "room", roomName, "admin", g.Identity)
	httpapi.WriteJSON(w, map[string]any{"identity": identity, "room": roomName, "lifted": true})
}

// writeRoomError answers a room error with its code.
func writeRoomError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, room.ErrNoRoom):
		httpapi.Fail(w, httpapi.CodeRoomNotFound, "the room is not open on any node")
	case errors.Is(err, room.ErrNoStudent):
		httpapi.Fail(w, httpapi.CodeParticipantNotFound, "no such student in the room")
	default:
		httpapi.WriteError(w, err)
	}
}

func checkName(field, v string) error {
	if v == "" || len(v) > maxName || !utf8.ValidString(v) {
		return httpapi.Errorf(httpapi.CodeMalformed, "%s is required: 1 to %d bytes of UTF-8", field, maxName)
	}
	return nil
}

func checkText(field, v string, optional bool) error {
	if (v == "" && !optional) || len(v) > maxText || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return httpapi.Errorf(httpapi.CodeMalformed, "%s must be 1 to %d bytes of UTF-8", field, maxText)
	}
	return nil
}

// Run refreshes the lockouts until ctx ends (see Lockouts.Run).
func (a *API) Run(ctx context.Context) { a.lockouts.Run(ctx) }
