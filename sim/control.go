package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Handler returns the HTTP control endpoint of the server:
//
//	POST /fault?kind=badcrc&count=3      (kinds: badcrc, garbage, cut, drip, disconnect)
//	POST /fault?kind=silence&duration=30s (also refuse)
//	GET  /status                          (Stats as JSON)
//
// Parameters may also come as a form body. A bad request gets status 400
// and a one-line reason; a fault injected gets 200 and the fault as JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fault", s.handleFault)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	return mux
}

func (s *Server) handleFault(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(format, args...)})
	}
	kind, err := ParseFaultKind(r.FormValue("kind"))
	if err != nil {
		fail("%v", err)
		return
	}
	f := Fault{Kind: kind}
	if v := r.FormValue("count"); v != "" {
		if f.Count, err = strconv.Atoi(v); err != nil || f.Count < 0 {
			fail("count: want a whole number >= 0, got %q", v)
			return
		}
	} else if kind != FaultDisconnect {
		f.Count = 1
	}
	if v := r.FormValue("duration"); v != "" {
		if f.For, err = time.ParseDuration(v); err != nil || f.For <= 0 {
			fail("duration: want a positive Go duration like 30s, got %q", v)
			return
		}
	}
	if err := s.Inject(f); err != nil {
		fail("%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kind": kind.String(), "count": f.Count, "duration": f.For.String()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
