package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WebSocketConfig configures a [WebSocket] gateway.
type WebSocketConfig struct {
	FeedConfig
	Addr       string // TCP listen address; default "127.0.0.1:0"
	Path       string // default "/ws", as the Homey Energy Dongle serves it
	MaxClients int    // clients served at once; a further one is closed with 1008. Default 2
	Text       bool   // send text messages; default binary
	// Split cuts each telegram into messages of at most this many bytes;
	// 0 sends each whole.
	Split int
}

// WebSocket emulates a dongle that streams the meter's raw bytes over a
// WebSocket, the same bytes to every client, to at most MaxClients.
type WebSocket struct {
	cfg  WebSocketConfig
	feed *feed
	ln   net.Listener

	mu      sync.Mutex
	clients map[chan *onceSent]struct{}

	refused atomic.Uint64
	running atomic.Bool
}

// NewWebSocket checks cfg and binds the listening socket.
func NewWebSocket(cfg WebSocketConfig) (*WebSocket, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Path == "" {
		cfg.Path = "/ws"
	}
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 2
	}
	if cfg.MaxClients < 0 || cfg.Split < 0 {
		return nil, errors.New("sim: negative MaxClients or Split")
	}
	f, err := newFeed(cfg.FeedConfig)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: listen: %w", err)
	}
	return &WebSocket{cfg: cfg, feed: f, ln: ln, clients: map[chan *onceSent]struct{}{}}, nil
}

// Addr returns the address the dongle listens on.
func (s *WebSocket) Addr() net.Addr { return s.ln.Addr() }

// URL returns the ws:// address of the stream.
func (s *WebSocket) URL() string { return "ws://" + s.ln.Addr().String() + s.cfg.Path }

// Refused returns how many clients were closed with 1008.
func (s *WebSocket) Refused() uint64 { return s.refused.Load() }

// Clients returns how many clients are served now.
func (s *WebSocket) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// Close releases the listener of a dongle whose Run was never called.
func (s *WebSocket) Close() error {
	if s.running.Load() {
		return nil
	}
	return s.ln.Close()
}

// Run serves clients and renders a telegram every interval until ctx is
// cancelled, then closes every client and returns nil. OnSend sees each
// telegram written to at least one client, once.
func (s *WebSocket) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.cfg.Path, func(w http.ResponseWriter, r *http.Request) { s.serve(ctx, w, r) })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		BaseContext: func(net.Listener) context.Context { return ctx }}
	var wg sync.WaitGroup
	wg.Go(func() {
		s.feed.run(ctx, s.cfg.Interval, func(sent Sent) {
			t := &onceSent{Sent: sent}
			s.mu.Lock()
			defer s.mu.Unlock()
			for ch := range s.clients {
				select {
				case ch <- t:
				default: // a client that does not keep up misses this one
				}
			}
		})
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		hs.Shutdown(sctx)
	})
	s.feed.log.Info("WebSocket dongle listening", "url", s.URL(), "max_clients", s.cfg.MaxClients)
	err := hs.Serve(s.ln)
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *WebSocket) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	ch := make(chan *onceSent, 2)
	s.mu.Lock()
	full := len(s.clients) >= s.cfg.MaxClients
	if !full {
		s.clients[ch] = struct{}{}
	}
	s.mu.Unlock()
	if full {
		s.refused.Add(1)
		ws.Close(websocket.StatusPolicyViolation, fmt.Sprintf("too many clients (at most %d)", s.cfg.MaxClients))
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.clients, ch)
		s.mu.Unlock()
	}()
	// Reading is what notices the client's close.
	cctx := ws.CloseRead(ctx)
	typ := websocket.MessageBinary
	if s.cfg.Text {
		typ = websocket.MessageText
	}
	for {
		select {
		case <-cctx.Done():
			ws.Close(websocket.StatusGoingAway, "")
			return
		case t := <-ch:
			if err := s.write(cctx, ws, typ, t.Frame); err != nil {
				ws.CloseNow()
				return
			}
			s.feed.report(t)
		}
	}
}

func (s *WebSocket) write(ctx context.Context, ws *websocket.Conn, typ websocket.MessageType, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for len(b) > 0 {
		n := len(b)
		if s.cfg.Split > 0 {
			n = min(n, s.cfg.Split)
		}
		if err := ws.Write(wctx, typ, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
