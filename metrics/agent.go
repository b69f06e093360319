package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// agentWriteTimeout bounds one agent-check answer: HAProxy's own check
// timeout is seconds; a stuck peer must not hold a goroutine.
const agentWriteTimeout = 2 * time.Second

// Agent answers HAProxy agent checks on its own TCP listener: one line,
// then close (the agent-check protocol).
type Agent struct {
	ln  net.Listener
	f   CapacityFunc
	log *slog.Logger
	wg  sync.WaitGroup
}

// ServeAgent answers agent checks on ln until Close.
func ServeAgent(ln net.Listener, f CapacityFunc, log *slog.Logger) *Agent {
	a := &Agent{ln: ln, f: f, log: log}
	a.wg.Add(1)
	go a.serve()
	return a
}

func (a *Agent) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.log.Warn("agent-check accept failed", "err", err)
			}
			return
		}
		c.SetWriteDeadline(time.Now().Add(agentWriteTimeout))
		c.Write([]byte(AgentReply(a.f())))
		c.Close()
	}
}

// Addr is the listener's address.
func (a *Agent) Addr() net.Addr { return a.ln.Addr() }

// Close stops answering and waits for the listener's goroutine.
func (a *Agent) Close(context.Context) error {
	err := a.ln.Close()
	a.wg.Wait()
	return err
}
