package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// FeedConfig is what the message-based gateways (HomeWizard, MQTT,
// WebSocket) share: one meter, broadcast, a telegram every Interval.
type FeedConfig struct {
	Interval time.Duration // time between telegrams; default 1s
	Meter    MeterConfig
	// Now is the clock the meter reads; default time.Now. The interval
	// uses real time.
	Now func() time.Time
	// OnSend, if set, is called with every telegram handed out (served,
	// published or written to at least one client); it must be quick and
	// safe for concurrent use.
	OnSend func(Sent)
	Logger *slog.Logger // default: discard
}

// feed renders one meter's telegrams every interval.
type feed struct {
	cfg   FeedConfig
	meter *Meter
	log   *slog.Logger
}

func newFeed(cfg FeedConfig) (*feed, error) {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Interval < time.Millisecond {
		return nil, fmt.Errorf("sim: interval %v is below 1ms", cfg.Interval)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := NewMeter(cfg.Meter)
	if err != nil {
		return nil, err
	}
	return &feed{cfg: cfg, meter: m, log: cfg.Logger}, nil
}

// run calls emit with a new telegram after first, then every interval,
// until ctx is done.
func (f *feed) run(ctx context.Context, first time.Duration, emit func(Sent)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		emit(f.meter.Render(f.cfg.Now()))
		t.Reset(f.cfg.Interval)
	}
}

func (f *feed) sent(s Sent) {
	if f.cfg.OnSend != nil {
		f.cfg.OnSend(s)
	}
}

// stripCRC returns frame with the CRC's hex digits left out ("!1F28\r\n"
// becomes "!\r\n"), as old HomeWizard firmware served telegrams.
func stripCRC(frame []byte) ([]byte, error) {
	i := bytes.LastIndexByte(frame, '!')
	if i < 0 {
		return nil, errors.New("sim: telegram has no '!'")
	}
	out := append([]byte(nil), frame[:i+1]...)
	return append(out, '\r', '\n'), nil
}
