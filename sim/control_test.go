package sim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/p1logger/p1logger/sim"
)

func TestControlHandler(t *testing.T) {
	srv := startServer(t, sim.Config{Meter: sim.MeterConfig{Profile: sim.ProfileNL5}})
	h := srv.Handler()
	do := func(method, target, body string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: %v: %q", method, target, err, rec.Body.String())
		}
		return rec.Code, v
	}
	for _, tc := range []struct {
		method, target, body string
		code                 int
	}{
		{"POST", "/fault?kind=badcrc&count=3", "", 200},
		{"POST", "/fault", "kind=garbage", 200},
		{"POST", "/fault?kind=silence&duration=10ms", "", 200},
		{"POST", "/fault?kind=nonsense", "", 400},
		{"POST", "/fault?kind=cut&count=-2", "", 400},
		{"POST", "/fault?kind=silence", "", 400},
		{"POST", "/fault?kind=refuse&duration=soon", "", 400},
	} {
		code, v := do(tc.method, tc.target, tc.body)
		if code != tc.code {
			t.Errorf("%s %s %s: status %d %v, want %d", tc.method, tc.target, tc.body, code, v, tc.code)
		}
		if code == 400 && v["error"] == "" {
			t.Errorf("%s: no error message", tc.target)
		}
	}
	time.Sleep(20 * time.Millisecond) // let the silence end
	code, st := do("GET", "/status", "")
	if code != 200 || st["profile"] != "nl5" || st["pending"].(map[string]any)["badcrc"].(float64) > 3 ||
		st["faults"].(map[string]any)["silence"].(float64) != 1 {
		t.Errorf("status %d %v", code, st)
	}
	req := httptest.NewRequest("GET", "/fault?kind=cut", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /fault: %d", rec.Code)
	}
}
