package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTTConfig configures an [MQTT] publisher.
type MQTTConfig struct {
	FeedConfig
	Broker   string // e.g. "tcp://127.0.0.1:1883" ("ssl://…" for TLS); required
	Topic    string // required
	User     string
	Password string
	// Tasmota publishes each telegram as Tasmota's serial bridge does:
	// {"SerialReceived":"…"} messages of at most Split bytes of telegram
	// each (default 256); otherwise one message per telegram.
	Tasmota bool
	Split   int
}

// MQTT emulates a dongle that publishes the meter's telegrams on an MQTT
// topic. It reconnects to the broker by itself (every second), as dongles
// do, so a broker restart only loses the telegrams of the outage.
type MQTT struct {
	cfg       MQTTConfig
	feed      *feed
	published atomic.Uint64
	skipped   atomic.Uint64
	running   atomic.Bool
}

// NewMQTT checks cfg. It does not connect: Run does.
func NewMQTT(cfg MQTTConfig) (*MQTT, error) {
	if cfg.Broker == "" || cfg.Topic == "" {
		return nil, errors.New("sim: MQTT needs a broker and a topic")
	}
	if cfg.Split == 0 {
		cfg.Split = 256
	}
	if cfg.Split < 0 {
		return nil, errors.New("sim: negative Split")
	}
	f, err := newFeed(cfg.FeedConfig)
	if err != nil {
		return nil, err
	}
	return &MQTT{cfg: cfg, feed: f}, nil
}

// Published returns how many telegrams went out, and how many were skipped
// while the broker was away.
func (p *MQTT) Published() (published, skipped uint64) {
	return p.published.Load(), p.skipped.Load()
}

// Run connects (retrying until the broker answers) and publishes a
// telegram every interval until ctx is cancelled; then it disconnects and
// returns nil. OnSend sees each telegram the client library accepted for
// sending (QoS 0: a broker that dies at that moment may still lose it).
func (p *MQTT) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("sim: Run called twice")
	}
	var id [4]byte
	rand.Read(id[:])
	opts := mqtt.NewClientOptions().AddBroker(p.cfg.Broker).SetClientID("p1sim-" + hex.EncodeToString(id[:])).
		SetUsername(p.cfg.User).SetPassword(p.cfg.Password).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second).SetConnectTimeout(2 * time.Second).SetOrderMatters(true)
	log := p.feed.log
	opts.SetOnConnectHandler(func(mqtt.Client) { log.Info("MQTT broker connected", "broker", p.cfg.Broker, "topic", p.cfg.Topic) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { log.Warn("MQTT broker connection lost", "err", err) })
	c := mqtt.NewClient(opts)
	c.Connect() // retries in the background
	defer c.Disconnect(250)
	p.feed.run(ctx, p.cfg.Interval, func(s Sent) {
		if !c.IsConnectionOpen() {
			p.skipped.Add(1)
			return
		}
		if err := p.publish(ctx, c, s.Frame); err != nil {
			p.skipped.Add(1)
			log.Warn("MQTT publish failed", "err", err)
			return
		}
		p.published.Add(1)
		p.feed.sent(s)
	})
	return nil
}

func (p *MQTT) publish(ctx context.Context, c mqtt.Client, frame []byte) error {
	msgs := [][]byte{frame}
	if p.cfg.Tasmota {
		msgs = msgs[:0]
		for rest := frame; len(rest) > 0; {
			n := min(len(rest), p.cfg.Split)
			b, err := json.Marshal(struct {
				SerialReceived string `json:"SerialReceived"`
			}{string(rest[:n])})
			if err != nil {
				return err
			}
			msgs = append(msgs, b)
			rest = rest[n:]
		}
	}
	for _, m := range msgs {
		tok := c.Publish(p.cfg.Topic, 0, false, m)
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
			return fmt.Errorf("publish to %s: no answer within 2s", p.cfg.Topic)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish to %s: %w", p.cfg.Topic, err)
		}
	}
	return nil
}
