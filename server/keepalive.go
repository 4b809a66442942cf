package server

import "time"

// SSE keep-alive. A stream's headers go out with its first token, so a
// request that fails before (queue full, prompt too long, experts
// unavailable) still gets a plain error status. While a streamed request
// waits for its first token (in the queue, then its prefill), a ": ping"
// comment goes out every Config.SSEKeepalive so that proxies and clients
// with read timeouts keep the connection: the first ping comes one
// interval after submission, and it sends the headers (200) and, for
// chat, the role chunk. A failure after that ends the stream with an
// error event, as any failure after the first token does. Pings stop at
// the first token: from then on tokens keep the stream moving.

// pinger ticks every keep-alive interval until stopped; C is nil when
// off (a nil channel never fires in a select).
type pinger struct {
	t *time.Ticker
	C <-chan time.Time
}

// pinger returns the keep-alive ticker of a response (off unless it
// streams and SSEKeepalive is set).
func (s *Server) pinger(stream bool) *pinger {
	p := &pinger{}
	if stream && s.cfg.SSEKeepalive > 0 {
		p.t = time.NewTicker(s.cfg.SSEKeepalive)
		p.C = p.t.C
	}
	return p
}

func (p *pinger) stop() {
	if p.t != nil {
		p.t.Stop()
		p.t, p.C = nil, nil
	}
}

// ping writes an SSE comment, starting the stream if needed.
func (o *responder) ping() error {
	if err := o.begin(); err != nil {
		return err
	}
	if _, err := o.w.Write([]byte(": ping\n\n")); err != nil {
		return err
	}
	return o.flush()
}
