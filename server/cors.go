package server

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// corsMethods and corsHeaders are what a preflight allows.
const (
	corsMethods = "GET, POST, OPTIONS"
	corsHeaders = "Authorization, Content-Type, X-Request-Id"
)

// cors wraps h with CORS for Config.CORSOrigins (off when empty: no
// headers, and OPTIONS is a 405 like any other wrong method). A request
// whose Origin is allowed gets Access-Control-Allow-Origin (the origin
// itself, or "*" when every origin is allowed); a preflight (OPTIONS with
// Access-Control-Request-Method) is answered 204 here, before the API
// key check, since browsers send preflights without credentials. A
// preflight from an origin not allowed gets a 204 without the allow
// headers, so the browser blocks the call.
func (s *Server) cors(h http.Handler) http.Handler {
	origins := s.cfg.CORSOrigins
	if len(origins) == 0 {
		return h
	}
	anyOrigin := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		hd := w.Header()
		if !anyOrigin {
			hd.Add("Vary", "Origin")
		}
		allowed := origin != "" && (anyOrigin || slices.Contains(origins, origin))
		if allowed {
			if anyOrigin {
				hd.Set("Access-Control-Allow-Origin", "*")
			} else {
				hd.Set("Access-Control-Allow-Origin", origin)
			}
			hd.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After")
		}
		if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
			h.ServeHTTP(w, r)
			return
		}
		hd.Add("Vary", "Access-Control-Request-Method")
		hd.Add("Vary", "Access-Control-Request-Headers")
		if allowed {
			hd.Set("Access-Control-Allow-Methods", corsMethods)
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				hd.Set("Access-Control-Allow-Headers", req)
			} else {
				hd.Set("Access-Control-Allow-Headers", corsHeaders)
			}
			hd.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// ParseOrigins splits a --cors-origins value: a comma list of origins
// (scheme://host[:port], a trailing slash dropped) or "*"; blanks are
// dropped. An entry that is not an origin is an error naming it.
func ParseOrigins(v string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				return nil, fmt.Errorf("%q is not an origin: want scheme://host[:port] or *", o)
			}
		}
		out = append(out, o)
	}
	return out, nil
}
