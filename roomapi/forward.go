package roomapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/invigil/invigil/internal/httpapi"
)

// In cluster mode a call about a room is served by the node that holds
// it: the node that took the call forwards it there as a reverse proxy,
// Authorization header and body included. A redirect (307) would do it
// in one hop less, but common HTTP clients drop the Authorization header
// once a redirect changes host. GET /v1/rooms asks every node for its
// own rooms and merges the answers.

// ForwardedHeader marks a call one node forwarded to another; a node
// never forwards such a call again, so a stale lease cannot bounce a
// call between two nodes.
const ForwardedHeader = "Invigil-Forwarded-By"

// forwardTimeout bounds one forwarded call or one node's part of a
// cluster-wide listing.
const forwardTimeout = 5 * time.Second

// Node is a node of the cluster as the rooms API reaches it.
type Node struct {
	ID  string
	URL string // base URL, e.g. http://10.0.0.2:7880
}

// Directory is what the rooms API needs of the cluster (package
// cluster's Redis, adapted by cmd): the live nodes, and the node that
// holds a room. A node alone has none.
type Directory interface {
	// Nodes lists the live nodes, this one included.
	Nodes(ctx context.Context) ([]Node, error)
	// Holder returns the live node that holds room without claiming it;
	// false when none does.
	Holder(ctx context.Context, room string) (Node, bool, error)
}

// atHolder serves r at the node that holds roomName: here (local) when
// this node holds it, when no node does (local decides what that
// means), when there is no cluster, or when r was forwarded already;
// else forwarded there.
func (a *API) atHolder(w http.ResponseWriter, r *http.Request, roomName string, local http.HandlerFunc) {
	if a.dir == nil || r.Header.Get(ForwardedHeader) != "" || a.rooms.Has(roomName) {
		local(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	holder, ok, err := a.dir.Holder(ctx, roomName)
	cancel()
	switch {
	case err != nil:
		httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster store (Redis) cannot say which node holds the room; retry shortly")
	case !ok || holder.ID == a.nodeID:
		local(w, r)
	default:
		a.forward(w, r, holder)
	}
}

// Forward serves r at node, as a call about a room is forwarded to the
// room's node (other APIs whose data one node holds use it: a recording
// file), and reports true; false when r was forwarded already or node
// is this one, and the caller answers.
func (a *API) Forward(w http.ResponseWriter, r *http.Request, node Node) bool {
	if r.Header.Get(ForwardedHeader) != "" || node.ID == a.nodeID {
		return false
	}
	a.forward(w, r, node)
	return true
}

// forward proxies r to node, answering node_unreachable when it does
// not answer.
func (a *API) forward(w http.ResponseWriter, r *http.Request, node Node) {
	target, err := url.Parse(node.URL)
	if err != nil {
		httpapi.Fail(w, httpapi.CodeInternal, "the holding node's URL is not a URL")
		return
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(ForwardedHeader, a.nodeID)
		},
		Transport: a.client.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			a.log.Warn("forwarded call failed", "node_id", node.ID, "url", node.URL, "err", err)
			httpapi.Fail(w, httpapi.CodeNodeUnreachable, fmt.Sprintf("node %s, which holds the room, did not answer", node.ID))
		},
	}
	ctx, cancel := context.WithTimeout(r.Context(), forwardTimeout)
	defer cancel()
	p.ServeHTTP(w, r.WithContext(ctx))
}

// clusterRooms asks every live node for its rooms (scope=node) with the
// caller's Authorization, and merges the answers; nodes that did not
// answer are listed in unreachable.
func (a *API) clusterRooms(ctx context.Context, auth string) (rooms []RoomSummary, unreachable []string, err error) {
	nodes, err := a.dir.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex // guards rooms and unreachable
	var wg sync.WaitGroup
	rooms = []RoomSummary{}
	for _, n := range nodes {
		if n.ID == a.nodeID {
			mu.Lock()
			rooms = append(rooms, a.localRooms()...)
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			rs, err := a.nodeRooms(ctx, n, auth)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				a.log.Warn("node did not list its rooms", "node_id", n.ID, "err", err)
				unreachable = append(unreachable, n.ID)
				return
			}
			rooms = append(rooms, rs...)
		})
	}
	wg.Wait()
	slices.SortFunc(rooms, func(x, y RoomSummary) int { return strings.Compare(x.Room+"\x00"+x.NodeID, y.Room+"\x00"+y.NodeID) })
	slices.Sort(unreachable)
	return rooms, unreachable, nil
}

// nodeRooms is one node's GET /v1/rooms?scope=node.
func (a *API) nodeRooms(ctx context.Context, n Node, auth string) ([]RoomSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(n.URL, "/")+"/v1/rooms?scope=node", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set(ForwardedHeader, a.nodeID)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var body struct {
		Rooms []RoomSummary `json:"rooms"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, err
	}
	return body.Rooms, nil
}
