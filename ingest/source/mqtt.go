package source

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// An MQTT gateway (mqtt://[user@]broker[:port]/topic, mqtts://… over TLS,
// password from ?password_file=PATH) is a dongle or a Tasmota device that
// publishes the meter's output on a topic, either a whole telegram per
// message or, as Tasmota's serial bridge does, {"SerialReceived":"…"} JSON
// messages that each carry a piece of one. Either way the payloads are
// handed on as the next bytes of the stream (the JSON's string decoded), and
// the splitter downstream frames them, so a telegram split over messages
// needs no reassembly of its own. JSON messages without SerialReceived
// (Tasmota's other results on the same topic) carry no meter bytes and are
// passed over. Retained messages are passed over too: a broker hands them
// out at every subscription, so they are old telegrams.
//
// The client is github.com/eclipse/paho.mqtt.golang (MQTT 3.1.1), because
// 3.1.1 is what Tasmota, ESP dongles and every home broker speak (paho.golang
// speaks MQTT 5 only). Its own reconnecting is off: a lost broker connection
// ends the Conn, and the Reader reconnects with its backoff, counts the
// reconnect and shows the state, as for TCP. Each connection uses a clean
// session and subscribes anew, which is what resubscribes after a broker
// restart. Wildcard topics (+, #) are refused: one gateway is one meter, and
// a wildcard would interleave the bytes of several.

func init() {
	Register("mqtt", newMQTT)
	Register("mqtts", newMQTT)
}

type mqttSource struct {
	tls          bool
	host         string // host:port
	user         string
	topic        string
	passwordFile string
	caFile       string
	timeout      time.Duration
}

func newMQTT(u *url.URL, opt Options) (Source, error) {
	s := &mqttSource{tls: strings.EqualFold(u.Scheme, "mqtts")}
	form := "mqtt://[user@]broker[:port]/topic"
	if s.tls {
		form = "mqtts://[user@]broker[:port]/topic"
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("has no broker; want %s", form)
	}
	s.host = u.Host
	if u.Port() == "" {
		s.host = net.JoinHostPort(u.Hostname(), map[bool]string{false: "1883", true: "8883"}[s.tls])
	}
	s.topic = strings.TrimPrefix(u.Path, "/")
	if s.topic == "" {
		return nil, fmt.Errorf("has no topic; want %s", form)
	}
	if u.Fragment != "" || strings.HasSuffix(s.topic, "/") {
		// "#" starts a URL's fragment: "p1/#" arrives as topic "p1/".
		return nil, fmt.Errorf("has a wildcard topic (# or a topic ending in /); want the one topic of one meter (a gateway is one meter)")
	}
	if strings.ContainsAny(s.topic, "+#") {
		return nil, fmt.Errorf("has the wildcard topic %q; want the one topic of one meter (a gateway is one meter)", s.topic)
	}
	if u.User != nil {
		s.user = u.User.Username()
	}
	for k, v := range u.Query() {
		if len(v) != 1 {
			return nil, fmt.Errorf("gives %s more than once", k)
		}
		switch {
		case k == "password_file":
			s.passwordFile = v[0]
		case k == "ca_file" && s.tls:
			s.caFile = v[0]
		default:
			return nil, fmt.Errorf("has an unknown option %q; want %s, optionally ?password_file=PATH (mqtts also &ca_file=PATH)", k, form)
		}
	}
	if s.passwordFile != "" {
		if s.user == "" {
			return nil, fmt.Errorf("has a password_file but no user; want mqtt://user@broker/topic?password_file=PATH")
		}
		if _, err := readSecret(s.passwordFile, "password_file"); err != nil {
			return nil, fmt.Errorf("is unusable: %w", err)
		}
	}
	if s.caFile != "" {
		if _, err := s.roots(); err != nil {
			return nil, fmt.Errorf("is unusable: %w", err)
		}
	}
	s.timeout = opt.DialTimeout
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	return s, nil
}

// roots reads ca_file.
func (s *mqttSource) roots() (*x509.CertPool, error) {
	b, err := os.ReadFile(s.caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file %q cannot be read (%v)", s.caFile, errors.Unwrap(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %q holds no PEM certificate", s.caFile)
	}
	return pool, nil
}

// String returns the address without the password file.
func (s *mqttSource) String() string {
	scheme := "mqtt"
	if s.tls {
		scheme = "mqtts"
	}
	user := ""
	if s.user != "" {
		user = url.User(s.user).String() + "@"
	}
	return scheme + "://" + user + s.host + "/" + s.topic
}

// Kind returns "mqtt".
func (s *mqttSource) Kind() string { return "mqtt" }

// Open connects to the broker and subscribes; either failing fails Open
// with the broker's reason (bad user name or password, not authorised,
// subscription refused). The returned Conn ends when the broker connection
// is lost, with that reason.
func (s *mqttSource) Open(ctx context.Context) (Conn, error) {
	opts := mqtt.NewClientOptions()
	scheme := "tcp://"
	if s.tls {
		scheme = "ssl://"
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.caFile != "" {
			pool, err := s.roots()
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		opts.SetTLSConfig(tc)
	}
	opts.AddBroker(scheme + s.host)
	opts.SetClientID(clientID())
	if s.user != "" {
		opts.SetUsername(s.user)
	}
	if s.passwordFile != "" {
		// Read at every connection, so a new password needs no restart.
		pw, err := readSecret(s.passwordFile, "password_file")
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		opts.SetPassword(pw)
	}
	opts.SetCleanSession(true)
	opts.SetAutoReconnect(false)
	opts.SetConnectRetry(false)
	opts.SetConnectTimeout(s.timeout)
	opts.SetKeepAlive(30 * time.Second)
	opts.SetPingTimeout(s.timeout)
	opts.SetOrderMatters(true) // the pieces of a split telegram stay in order

	var c *streamConn
	fctx, stop := context.WithCancel(context.Background())
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		c.fail(fmt.Errorf("broker connection lost: %w", err))
	})
	client := mqtt.NewClient(opts)
	c = newStreamConn(func() {
		stop()
		client.Disconnect(100)
	})
	if err := wait(ctx, client.Connect(), s.timeout); err != nil {
		client.Disconnect(0)
		return nil, fmt.Errorf("connect to broker %s: %w", s.host, err)
	}
	tok := client.Subscribe(s.topic, 0, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			return
		}
		if b := payload(m.Payload()); b != nil {
			c.feed(fctx, b)
		}
	})
	if err := wait(ctx, tok, s.timeout); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to %q: %w", s.topic, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		if code := st.Result()[s.topic]; code == 0x80 {
			c.Close()
			return nil, fmt.Errorf("subscribe to %q: broker refused it (not authorised for this topic?)", s.topic)
		}
	}
	return c, nil
}

// wait waits for tok for at most d, or until ctx is done.
func wait(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer within %s", d)
	}
}

// clientID returns a client id of its own for every connection: a broker
// drops a client when another connects with its id.
func clientID() string {
	var b [6]byte
	rand.Read(b[:])
	return "p1logger-" + hex.EncodeToString(b[:])
}

// payload returns the meter bytes a message carries: a Tasmota
// SerialReceived string decoded, or the payload as it is; nil for JSON
// without SerialReceived.
func payload(p []byte) []byte {
	t := bytes.TrimLeft(p, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return bytes.Clone(p)
	}
	var m struct {
		SerialReceived *string `json:"SerialReceived"`
	}
	if err := json.Unmarshal(t, &m); err != nil {
		// Not JSON after all: meter bytes never start with "{", but a
		// gateway's noise may; the splitter skips it.
		return bytes.Clone(p)
	}
	if m.SerialReceived == nil {
		return nil
	}
	return []byte(*m.SerialReceived)
}
