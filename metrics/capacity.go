package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Capacity is a node's occupancy and headroom, as GET /capacity serves it
// to load balancers and the exam platform's API tier.
type Capacity struct {
	NodeID   string `json:"node_id"`
	Version  string `json:"version"`
	Draining bool   `json:"draining"`
	Rooms    int    `json:"rooms"`
	Students int    `json:"students"`
	Proctors int    `json:"proctors"`
	// MaxParticipants is the configured cap; FreeSeats what is left of it.
	MaxParticipants int `json:"max_participants"`
	FreeSeats       int `json:"free_seats"`
	MaxRooms        int `json:"max_rooms"`
	// Stress is 0 (idle) to 1 (full): the larger of seat use and room use.
	Stress float64 `json:"stress"`
	// Weight is what the HAProxy agent reports: 0–100, 0 when draining.
	Weight int `json:"weight"`
}

// CapacityFunc computes the node's Capacity now.
type CapacityFunc func() Capacity

// Compute fills FreeSeats, Stress and Weight from the counts and caps.
func (c Capacity) Compute() Capacity {
	used := c.Students + c.Proctors
	c.FreeSeats = max(c.MaxParticipants-used, 0)
	if c.MaxParticipants > 0 {
		c.Stress = float64(used) / float64(c.MaxParticipants)
	}
	if c.MaxRooms > 0 {
		c.Stress = max(c.Stress, float64(c.Rooms)/float64(c.MaxRooms))
	}
	c.Stress = min(c.Stress, 1)
	c.Weight = int((1 - c.Stress) * 100)
	if c.Draining {
		c.Weight = 0
	}
	return c
}

// CapacityHandler serves GET /capacity.
func CapacityHandler(f CapacityFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(f())
	})
}

// AgentReply is the HAProxy agent-check answer for c (HAProxy
// configuration manual, "agent-check"): "drain" while draining, else
// "ready up W%", with W from free capacity. HAProxy keeps a server in
// drain until the agent says ready, so a serving node always says it.
func AgentReply(c Capacity) string {
	if c.Draining {
		return "drain\n"
	}
	return fmt.Sprintf("ready up %d%%\n", max(c.Weight, 1))
}
