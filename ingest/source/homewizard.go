package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The HomeWizard P1 meter serves the meter's newest telegram over HTTP; it
// is polled, and each new telegram is handed on as the bytes a serial cable
// would have delivered.
//
// API v1 (homewizard://host[:port]): GET http://host/api/v1/telegram,
// text/plain, no authentication (the "local API" switch in the HomeWizard
// Energy app must be on, or the device answers 403).
//
// API v2 (homewizards://host[:port]?token_file=PATH, firmware 6 and later):
// GET https://host/api/telegram with "Authorization: Bearer TOKEN" and
// "X-Api-Version: 2"; 503 until the device has a first telegram. The device's
// certificate is self-signed by the vendor, and the vendor's documentation
// calls the API with certificate checks off (curl --insecure): a system trust
// store cannot vouch for it. So by default the connection is encrypted but
// the device is not authenticated (the token still is not sent in clear), and
// cert_sha256=HEX pins the device's certificate (its SHA-256 fingerprint,
// shown by `openssl s_client -connect host:443 | openssl x509 -fingerprint
// -sha256`), which then is checked on every connection.
//
// Telegrams without a CRC: old v1 firmware dropped the CRC line's checksum.
// The source hands the bytes on unchanged: it does not compute a CRC for
// bytes it cannot check (that would vouch for a telegram nobody verified).
// The pipeline accepts a CRC-less telegram only from DSMR 2.2/3 meters, which
// never send one; from DSMR 4/5 and e-MUCS meters it is counted as a parse
// error with the reason `P1 version "50" requires a CRC after "!"; none was
// sent`, which the log, /api and the status page show: the remedy is the
// device's firmware update.

// hwPollDefault is how often the device is asked for a telegram: a DSMR 5
// meter sends one every second, and asking faster only returns the same.
const hwPollDefault = time.Second

// hwMaxBody bounds a response: the longest telegrams (Luxembourg, with
// M-Bus devices and a long text message) stay far below it.
const hwMaxBody = 64 << 10

func init() {
	Register("homewizard", newHomeWizard)
	Register("homewizards", newHomeWizard)
}

type homeWizard struct {
	v2        bool
	host      string // host:port
	path      string
	tokenFile string
	pin       []byte // SHA-256 of the device certificate; nil: not pinned
	poll      time.Duration
	client    *http.Client
	timeout   time.Duration
}

func newHomeWizard(u *url.URL, opt Options) (Source, error) {
	s := &homeWizard{v2: strings.EqualFold(u.Scheme, "homewizards"), poll: hwPollDefault}
	form := "homewizard://host[:port]"
	if s.v2 {
		form = "homewizards://host[:port]?token_file=PATH"
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("has no host; want %s", form)
	}
	if u.User != nil {
		return nil, fmt.Errorf("has a user name; want %s (v2 takes a token from token_file)", form)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("has a path %q; want %s (the API path is fixed)", u.Path, form)
	}
	s.host = u.Host
	if u.Port() == "" {
		s.host = net.JoinHostPort(u.Hostname(), map[bool]string{false: "80", true: "443"}[s.v2])
	}
	s.path = "/api/v1/telegram"
	if s.v2 {
		s.path = "/api/telegram"
	}
	q := u.Query()
	for k, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("gives %s more than once", k)
		}
		switch {
		case k == "token_file" && s.v2:
			s.tokenFile = v[0]
		case k == "cert_sha256" && s.v2:
			pin, err := hex.DecodeString(strings.ReplaceAll(v[0], ":", ""))
			if err != nil || len(pin) != sha256.Size {
				return nil, fmt.Errorf("has cert_sha256 %q; want the certificate's SHA-256 fingerprint, 64 hex digits (colons allowed)", v[0])
			}
			s.pin = pin
		case k == "interval":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < 100*time.Millisecond || d > time.Minute {
				return nil, fmt.Errorf("has interval %q; want a duration between 100ms and 1m (default 1s)", v[0])
			}
			s.poll = d
		default:
			if s.v2 {
				return nil, fmt.Errorf("has an unknown option %q; want %s, optionally &cert_sha256=HEX&interval=1s", k, form)
			}
			return nil, fmt.Errorf("has an unknown option %q; want %s, optionally ?interval=1s (API v2 is homewizards://…?token_file=PATH)", k, form)
		}
	}
	if s.v2 {
		if s.tokenFile == "" {
			return nil, fmt.Errorf("has no token_file; want %s (the token the device gave when its button was pressed)", form)
		}
		if _, err := readSecret(s.tokenFile, "token_file"); err != nil {
			return nil, fmt.Errorf("is unusable: %w", err)
		}
	}
	s.timeout = opt.DialTimeout
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   s.timeout,
		ResponseHeaderTimeout: s.timeout,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       time.Minute,
		DisableCompression:    true,
	}
	if s.v2 {
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The device's certificate is self-signed (see above): it is
			// checked against the pin, if one is given, instead.
			InsecureSkipVerify: true, //nolint:gosec // the pin below is the check
			VerifyConnection:   s.verify,
		}
	}
	s.client = &http.Client{
		Transport: tr,
		// The device never redirects; following one could send the token
		// elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

// verify checks the device certificate against the pin, when there is one.
func (s *homeWizard) verify(cs tls.ConnectionState) error {
	if s.pin == nil {
		return nil
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("device sent no certificate")
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
	if !bytes.Equal(sum[:], s.pin) {
		return fmt.Errorf("device certificate has SHA-256 %s, not the cert_sha256 in the address (another device, or a reset one)", hex.EncodeToString(sum[:]))
	}
	return nil
}

// readSecret reads a secret from path; its error names the option, never
// the content.
func readSecret(path, option string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("%s %q cannot be read (%v)", option, path, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s %q is empty", option, path)
	}
	if strings.ContainsAny(secret, "\r\n") {
		return "", fmt.Errorf("%s %q has more than one line; want the secret alone", option, path)
	}
	return secret, nil
}

// String returns the address without the token file and pin.
func (s *homeWizard) String() string {
	if s.v2 {
		return "homewizards://" + s.host
	}
	return "homewizard://" + s.host
}

// Kind returns "homewizard" for both API versions.
func (s *homeWizard) Kind() string { return "homewizard" }

// Open fetches the first telegram, so that an unreachable device, a refused
// token or a device without telegrams fails here with its reason, then
// polls in a goroutine of the returned Conn until it is closed. A poll that
// fails ends the Conn with the reason (Read returns it); a telegram equal to
// the previous one is not handed on again.
func (s *homeWizard) Open(ctx context.Context) (Conn, error) {
	var token string
	if s.v2 {
		// Read at every connection, so a new token needs no restart.
		t, err := readSecret(s.tokenFile, "token_file")
		if err != nil {
			return nil, fmt.Errorf("read token: %w", err)
		}
		token = t
	}
	first, err := s.fetch(ctx, token)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	c := newStreamConn(cancel)
	go s.pollLoop(pctx, c, token, first)
	return c, nil
}

// errNoTelegram is the 503 a v2 device answers until it has a telegram.
var errNoTelegram = errors.New("no telegram yet")

func (s *homeWizard) pollLoop(ctx context.Context, c *streamConn, token string, last []byte) {
	defer s.client.CloseIdleConnections()
	if last != nil && c.feed(ctx, withLineEnd(last)) != nil {
		return
	}
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := s.fetch(ctx, token)
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errNoTelegram):
			// The meter stopped sending (unplugged?): the reader's idle
			// timeout decides when that is a lost connection.
			continue
		case err != nil:
			c.fail(err)
			return
		case bytes.Equal(b, last):
			continue
		}
		last = b
		if c.feed(ctx, withLineEnd(b)) != nil {
			return
		}
	}
}

// withLineEnd returns b ending in a line end: the splitter ends a telegram
// at the CRC line's line end, which a response body may leave out.
func withLineEnd(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b[:len(b):len(b)], '\r', '\n')
	}
	return b
}

// fetch GETs the telegram once. A 503 returns errNoTelegram wrapped; other
// failures say what the user should check.
func (s *homeWizard) fetch(ctx context.Context, token string) ([]byte, error) {
	scheme := "http"
	if s.v2 {
		scheme = "https"
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, scheme+"://"+s.host+s.path, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", s.path, err)
	}
	req.Header.Set("Accept", "text/plain")
	if s.v2 {
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Api-Version", "2")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the message already, once
		}
		return nil, fmt.Errorf("GET %s://%s%s: %w", scheme, s.host, s.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, hwMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if len(body) > hwMaxBody {
			return nil, fmt.Errorf("%s answered more than %d KiB: not a telegram", s.path, hwMaxBody>>10)
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, fmt.Errorf("%w (%s answered 200 with an empty body)", errNoTelegram, s.path)
		}
		return body, nil
	case http.StatusServiceUnavailable:
		return nil, fmt.Errorf("%w: the device answers 503 until its meter sends a first telegram (is the P1 cable plugged in?)", errNoTelegram)
	case http.StatusUnauthorized:
		return nil, errors.New("device refused the token (HTTP 401): token_file must hold the token the device gave when its button was pressed")
	case http.StatusForbidden:
		if s.v2 {
			return nil, errors.New("device refused the request (HTTP 403): the token lacks permission")
		}
		return nil, errors.New("device refused the request (HTTP 403): switch on the local API in the HomeWizard Energy app, or use API v2 (homewizards://…)")
	case http.StatusNotFound:
		if s.v2 {
			return nil, errors.New("device has no /api/telegram (HTTP 404): API v2 needs a P1 meter with firmware 6 or later; older ones speak v1 (homewizard://host)")
		}
		return nil, errors.New("device has no /api/v1/telegram (HTTP 404): not a HomeWizard P1 meter, or API v1 is switched off (try homewizards://…)")
	}
	if s.v2 && resp.StatusCode == http.StatusBadRequest {
		return nil, fmt.Errorf("device refused the request (HTTP 400 %s): it may not speak API version 2", short(body))
	}
	return nil, fmt.Errorf("%s answered HTTP %d %s", s.path, resp.StatusCode, short(body))
}

// short quotes the start of an error body, for messages.
func short(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 80 {
		b = append(b[:77:77], "..."...)
	}
	return fmt.Sprintf("%q", b)
}
