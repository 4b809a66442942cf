package main

import (
	"log/slog"

	"github.com/inference-x/inference-x/internal/rpc"
)

// warnExposed logs a warning when the HTTP API listens off loopback
// without an API key: anyone who can reach the address can use the model.
// It is not refused (llama-server does not refuse either, and a cluster
// may put its own authentication in front), but it is loud, and
// --insecure does not silence it. It reports whether it warned.
func warnExposed(log *slog.Logger, addr, apiKey string) bool {
	if apiKey != "" || rpc.IsLoopback(addr) {
		return false
	}
	log.Warn("serving HTTP off loopback without an API key: anyone who can reach it can use the model; give --api-key-file (or $IX_API_KEY) or bind --http to 127.0.0.1",
		"addr", addr)
	return true
}
