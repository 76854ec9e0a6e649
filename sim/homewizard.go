package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HomeWizardConfig configures a [HomeWizard].
type HomeWizardConfig struct {
	FeedConfig
	Addr string // TCP listen address; default "127.0.0.1:0"
	// API is 1 (plain HTTP, GET /api/v1/telegram, no authentication) or 2
	// (HTTPS with a self-signed certificate made at start, GET
	// /api/telegram with "Authorization: Bearer Token" and "X-Api-Version:
	// 2"). Default 1.
	API   int
	Token string // API 2: the token a client must send; required
	// NoCRC serves telegrams without their CRC, as old v1 firmware did.
	NoCRC bool
	// FirstAfter is when the first telegram is rendered; until then the
	// device answers 503, as a device does after boot until its meter has
	// sent one. Default 0: at once.
	FirstAfter time.Duration
}

// HomeWizard emulates a HomeWizard Wi-Fi P1 meter's local API, as the
// vendor documents it: the newest telegram, served to anyone who asks.
type HomeWizard struct {
	cfg    HomeWizardConfig
	feed   *feed
	ln     net.Listener
	cert   *x509.Certificate // API 2
	latest atomic.Pointer[onceSent]

	requests, refused atomic.Uint64
	running           atomic.Bool
}

// NewHomeWizard checks cfg, makes the certificate (API 2) and binds the
// listening socket, so that Addr is known before Run.
func NewHomeWizard(cfg HomeWizardConfig) (*HomeWizard, error) {
	if cfg.API == 0 {
		cfg.API = 1
	}
	if cfg.API != 1 && cfg.API != 2 {
		return nil, fmt.Errorf("sim: HomeWizard API %d; want 1 or 2", cfg.API)
	}
	if cfg.API == 2 && cfg.Token == "" {
		return nil, errors.New("sim: HomeWizard API 2 needs a token")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	f, err := newFeed(cfg.FeedConfig)
	if err != nil {
		return nil, err
	}
	h := &HomeWizard{cfg: cfg, feed: f}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: listen: %w", err)
	}
	if cfg.API == 2 {
		cert, err := selfSigned(ln.Addr())
		if err != nil {
			ln.Close()
			return nil, err
		}
		h.cert = cert.Leaf
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	h.ln = ln
	return h, nil
}

// selfSigned makes a certificate for the listening address, signed by its
// own key, as every HomeWizard device carries one.
func selfSigned(addr net.Addr) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: certificate key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "appliance/p1dongle/p1sim"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		tmpl.IPAddresses = []net.IP{ta.IP}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("sim: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Addr returns the address the device listens on.
func (h *HomeWizard) Addr() net.Addr { return h.ln.Addr() }

// CertSHA256 returns the SHA-256 fingerprint of the API 2 certificate in
// hex ("" for API 1), for a client's cert_sha256 pin.
func (h *HomeWizard) CertSHA256() string {
	if h.cert == nil {
		return ""
	}
	sum := sha256.Sum256(h.cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Requests returns how many telegram requests were answered with one, and
// how many were refused (no telegram yet, bad token or API version).
func (h *HomeWizard) Requests() (served, refused uint64) {
	return h.requests.Load(), h.refused.Load()
}

// Close releases the listener of a device whose Run was never called.
func (h *HomeWizard) Close() error {
	if h.running.Load() {
		return nil
	}
	return h.ln.Close()
}

// Run serves the API and renders a telegram every interval until ctx is
// cancelled, then returns nil. OnSend is called when a telegram is first
// served: a telegram nobody fetched was never sent.
func (h *HomeWizard) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	mux := http.NewServeMux()
	if h.cfg.API == 1 {
		mux.HandleFunc("GET /api/v1/telegram", h.telegram)
	} else {
		mux.HandleFunc("GET /api/telegram", h.v2(h.telegram))
	}
	mux.HandleFunc("GET /api", h.device)
	// Handshakes that a client refuses (a pinned certificate, plain HTTP)
	// are the client's to report.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	store := func(s Sent) {
		if h.cfg.NoCRC {
			if b, err := stripCRC(s.Frame); err == nil {
				s.Frame, s.Written, s.CRC = b, len(b), false
			}
		}
		h.latest.Store(&onceSent{Sent: s})
	}
	first := h.cfg.FirstAfter
	if first == 0 {
		// Before serving: a client that connected since NewHomeWizard must
		// not see the 503 of a device without telegrams.
		store(h.feed.meter.Render(h.feed.cfg.Now()))
		first = h.feed.cfg.Interval
	}
	var wg sync.WaitGroup
	wg.Go(func() { h.feed.run(ctx, first, store) })
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	})
	h.feed.log.Info("HomeWizard P1 meter listening", "addr", h.Addr().String(), "api", h.cfg.API)
	err := hs.Serve(h.ln)
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// onceSent is a telegram handed to several clients, and whether OnSend
// has seen it.
type onceSent struct {
	Sent
	reported atomic.Bool
}

// report calls OnSend the first time only.
func (f *feed) report(s *onceSent) {
	if !s.reported.Swap(true) {
		f.sent(s.Sent)
	}
}

// v2 checks the token and API version header as an API 2 device does.
func (h *HomeWizard) v2(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+h.cfg.Token {
			h.refused.Add(1)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "user:unauthorized"})
			return
		}
		if r.Header.Get("X-Api-Version") != "2" {
			h.refused.Add(1)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "request:api-version-not-supported"})
			return
		}
		next(w, r)
	}
}

func (h *HomeWizard) telegram(w http.ResponseWriter, _ *http.Request) {
	s := h.latest.Load()
	if s == nil {
		h.refused.Add(1)
		http.Error(w, "no telegram received yet", http.StatusServiceUnavailable)
		return
	}
	h.requests.Add(1)
	h.feed.report(s)
	w.Header().Set("Content-Type", "text/plain")
	w.Write(s.Frame)
}

// device answers GET /api with what the device says about itself.
func (h *HomeWizard) device(w http.ResponseWriter, _ *http.Request) {
	v := map[string]string{"product_type": "HWE-P1", "product_name": "P1 meter", "serial": "p1sim"}
	if h.cfg.API == 1 {
		v["api_version"] = "v1"
		v["firmware_version"] = "4.19"
	} else {
		v["api_version"] = "2.0.0"
		v["firmware_version"] = "6.00"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
