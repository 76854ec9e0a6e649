package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/p1logger/p1logger/sim"
)

// The gateways other than a TCP stream, chosen with -mode (default tcp,
// which is unchanged):
//
//	-mode homewizard   a HomeWizard P1 meter's local API on -listen:
//	                   -hw-api 1: GET http://ADDR/api/v1/telegram;
//	                   -hw-api 2: GET https://ADDR/api/telegram with a
//	                   self-signed certificate made at start (its SHA-256 is
//	                   logged, for cert_sha256=), the token in -hw-token-file
//	                   required, X-Api-Version: 2 checked, 503 until the first
//	                   telegram (-hw-first-after); -hw-no-crc serves telegrams
//	                   without CRC, as old firmware did.
//	-mode mqtt         publishes to -mqtt-broker on -mqtt-topic, one telegram
//	                   per message, or -mqtt-tasmota: {"SerialReceived":"…"}
//	                   pieces of -mqtt-split bytes.
//	-mode ws           a WebSocket stream on ws://ADDR/ws (-ws-path) for at
//	                   most -ws-max-clients clients; a further one is closed
//	                   with 1008.
//
// Every mode serves one meter (-profile, -seed, -name, …) every -interval;
// the fault flags, -per-conn and -control are for -mode tcp only.

// netOptions are the flags of the modes other than tcp.
type netOptions struct {
	mode string

	hwAPI        int
	hwTokenFile  string
	hwNoCRC      bool
	hwFirstAfter time.Duration

	mqttBroker, mqttTopic, mqttUser, mqttPasswordFile string
	mqttTasmota                                       bool
	mqttSplit                                         int

	wsPath       string
	wsMaxClients int
	wsText       bool
	wsSplit      int
}

// addNetFlags registers the -mode flag and the flags of the other modes.
func addNetFlags(fs *flag.FlagSet, n *netOptions) {
	fs.StringVar(&n.mode, "mode", "tcp", "gateway `kind`: tcp (a raw stream), homewizard (HomeWizard P1 meter API), mqtt (publish to a broker), ws (WebSocket stream)")
	fs.IntVar(&n.hwAPI, "hw-api", 1, "-mode homewizard: API `version` 1 (HTTP) or 2 (HTTPS, token)")
	fs.StringVar(&n.hwTokenFile, "hw-token-file", "", "-mode homewizard -hw-api 2: `file` holding the token clients must send")
	fs.BoolVar(&n.hwNoCRC, "hw-no-crc", false, "-mode homewizard: serve telegrams without CRC, as old v1 firmware did")
	fs.DurationVar(&n.hwFirstAfter, "hw-first-after", 0, "-mode homewizard: answer 503 for this `duration` after start, until the first telegram")
	fs.StringVar(&n.mqttBroker, "mqtt-broker", "tcp://127.0.0.1:1883", "-mode mqtt: broker `URL` (tcp://host:port, ssl://host:port)")
	fs.StringVar(&n.mqttTopic, "mqtt-topic", "p1/telegram", "-mode mqtt: `topic` to publish on")
	fs.StringVar(&n.mqttUser, "mqtt-user", "", "-mode mqtt: user `name`")
	fs.StringVar(&n.mqttPasswordFile, "mqtt-password-file", "", "-mode mqtt: `file` holding the password")
	fs.BoolVar(&n.mqttTasmota, "mqtt-tasmota", false, "-mode mqtt: publish as Tasmota's serial bridge: {\"SerialReceived\":\"…\"} pieces")
	fs.IntVar(&n.mqttSplit, "mqtt-split", 256, "-mode mqtt -mqtt-tasmota: telegram `bytes` per message")
	fs.StringVar(&n.wsPath, "ws-path", "/ws", "-mode ws: URL `path` of the stream")
	fs.IntVar(&n.wsMaxClients, "ws-max-clients", 2, "-mode ws: clients served at once; a further one is closed with 1008")
	fs.BoolVar(&n.wsText, "ws-text", false, "-mode ws: send text messages (default binary)")
	fs.IntVar(&n.wsSplit, "ws-split", 0, "-mode ws: at most this many `bytes` per message (0: a telegram per message)")
}

// tcpOnly are the flags that mean nothing outside -mode tcp.
var tcpOnly = []string{"per-conn", "control", "drip", "fault-badcrc-every", "fault-garbage-every", "fault-cut-every",
	"fault-drip-every", "fault-disconnect-after", "fault-silence", "fault-refuse"}

// checkNetFlags validates the -mode flags once fs is parsed. Errors name
// the flag.
func checkNetFlags(fs *flag.FlagSet, n *netOptions) error {
	switch n.mode {
	case "tcp", "homewizard", "mqtt", "ws":
	default:
		return fmt.Errorf("-mode: want tcp, homewizard, mqtt or ws, got %q", n.mode)
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		prefix, _, _ := strings.Cut(f.Name, "-")
		switch {
		case n.mode != "tcp" && contains(tcpOnly, f.Name):
			err = fmt.Errorf("-%s: only for -mode tcp, not -mode %s", f.Name, n.mode)
		case prefix == "hw" && n.mode != "homewizard", prefix == "mqtt" && n.mode != "mqtt", prefix == "ws" && n.mode != "ws":
			err = fmt.Errorf("-%s: only for -mode %s", f.Name, map[string]string{"hw": "homewizard", "mqtt": "mqtt", "ws": "ws"}[prefix])
		}
	})
	if err != nil {
		return err
	}
	switch {
	case n.hwAPI != 1 && n.hwAPI != 2:
		return fmt.Errorf("-hw-api: want 1 or 2, got %d", n.hwAPI)
	case n.mode == "homewizard" && n.hwAPI == 2 && n.hwTokenFile == "":
		return fmt.Errorf("-hw-token-file: required with -hw-api 2")
	case n.mode == "homewizard" && n.hwAPI == 1 && n.hwTokenFile != "":
		return fmt.Errorf("-hw-token-file: API 1 has no token; use -hw-api 2")
	case n.mqttSplit < 1:
		return fmt.Errorf("-mqtt-split: want a positive byte count, got %d", n.mqttSplit)
	case n.wsSplit < 0:
		return fmt.Errorf("-ws-split: want 0 (whole telegrams) or a positive byte count, got %d", n.wsSplit)
	case n.hwFirstAfter < 0:
		return fmt.Errorf("-hw-first-after: want a duration of 0 or more, got %v", n.hwFirstAfter)
	case n.wsMaxClients < 1:
		return fmt.Errorf("-ws-max-clients: want at least 1, got %d", n.wsMaxClients)
	case n.mode == "mqtt" && n.mqttTopic == "":
		return fmt.Errorf("-mqtt-topic: required")
	case n.mode == "mqtt" && strings.ContainsAny(n.mqttTopic, "+#"):
		return fmt.Errorf("-mqtt-topic: a topic to publish on has no wildcards, got %q", n.mqttTopic)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// readFlagSecret reads a secret named by a flag.
func readFlagSecret(flagName, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("-%s: %v", flagName, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("-%s: %s is empty", flagName, path)
	}
	return s, nil
}

// runner is a gateway of a mode other than tcp.
type runner interface {
	Run(ctx context.Context) error
}

// serveNet runs the gateway of o's mode until ctx is done and returns the
// exit status.
func serveNet(ctx context.Context, o *options, logger *slog.Logger) int {
	n := &o.net
	fc := sim.FeedConfig{Interval: o.sim.Interval, Meter: o.sim.Meter, Now: o.sim.Now, Logger: logger}
	var r runner
	var err error
	switch n.mode {
	case "homewizard":
		cfg := sim.HomeWizardConfig{FeedConfig: fc, Addr: o.sim.Addr, API: n.hwAPI, NoCRC: n.hwNoCRC, FirstAfter: n.hwFirstAfter}
		if n.hwAPI == 2 {
			if cfg.Token, err = readFlagSecret("hw-token-file", n.hwTokenFile); err != nil {
				break
			}
		}
		var h *sim.HomeWizard
		if h, err = sim.NewHomeWizard(cfg); err == nil {
			if n.hwAPI == 2 {
				logger.Info("HomeWizard certificate", "sha256", h.CertSHA256())
			}
			r = h
		}
	case "mqtt":
		cfg := sim.MQTTConfig{FeedConfig: fc, Broker: n.mqttBroker, Topic: n.mqttTopic, User: n.mqttUser,
			Tasmota: n.mqttTasmota, Split: n.mqttSplit}
		if n.mqttPasswordFile != "" {
			if cfg.Password, err = readFlagSecret("mqtt-password-file", n.mqttPasswordFile); err != nil {
				break
			}
		}
		r, err = sim.NewMQTT(cfg)
	case "ws":
		r, err = sim.NewWebSocket(sim.WebSocketConfig{FeedConfig: fc, Addr: o.sim.Addr, Path: n.wsPath,
			MaxClients: n.wsMaxClients, Text: n.wsText, Split: n.wsSplit})
	}
	if err != nil {
		logger.Error("gateway did not start", "err", err)
		return 1
	}
	if err := r.Run(ctx); err != nil {
		logger.Error("gateway stopped", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}
