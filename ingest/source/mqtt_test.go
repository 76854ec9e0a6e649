package source_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/p1logger/p1logger/ingest/source"
	"github.com/p1logger/p1logger/internal/mosquittotest"
	"github.com/p1logger/p1logger/sim"
)

func startPublisher(t *testing.T, cfg sim.MQTTConfig, log *sentLog) *sim.MQTT {
	t.Helper()
	cfg.OnSend = log.add
	if cfg.Interval == 0 {
		cfg.Interval = 200 * time.Millisecond
	}
	p, err := sim.NewMQTT(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, p.Run)
	return p
}

// assertRun checks that got is a run of consecutive telegrams of sent. The
// meter's clock has whole seconds, so at 200 ms it sends each telegram a few
// times over: runs of equal telegrams count as one.
func assertRun(t *testing.T, got [][]byte, log *sentLog) {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // OnSend runs after the publish
	sent, got := distinct(log.frames()), distinct(got)
	start := -1
	for i := range sent {
		if bytes.Equal(sent[i], got[0]) {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("first telegram received was never sent: %q", got[0])
	}
	for i, f := range got {
		if start+i >= len(sent) || !bytes.Equal(f, sent[start+i]) {
			t.Fatalf("telegram %d received is not the one sent after the one before:\n%q", i, f)
		}
	}
}

// TestMQTT reads whole telegrams, and Tasmota's JSON pieces, from a real
// Mosquitto: the telegrams come out byte for byte.
func TestMQTT(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Config{})
	for _, tc := range []struct {
		name  string
		cfg   sim.MQTTConfig
		topic string
	}{
		{"whole", sim.MQTTConfig{}, "p1/telegram"},
		{"tasmota", sim.MQTTConfig{Tasmota: true, Split: 120}, "tele/p1meter/RESULT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log sentLog
			cfg := tc.cfg
			cfg.Broker, cfg.Topic = b.URL(), tc.topic
			src, c := open(t, "mqtt://"+b.Addr()+"/"+tc.topic)
			if got, want := src.String(), "mqtt://"+b.Addr()+"/"+tc.topic; got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
			startPublisher(t, cfg, &log)
			got := frames(t, c, 8, 5*time.Second)
			assertRun(t, got, &log)
			if tc.cfg.Tasmota && len(got[0]) <= 120 {
				t.Fatalf("telegram of %d bytes was not split", len(got[0]))
			}
		})
	}
}

// TestMQTTBrokerRestart: a broker restart ends the Conn with the reason;
// the next Open subscribes anew and telegrams flow again.
func TestMQTTBrokerRestart(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Config{})
	var log sentLog
	startPublisher(t, sim.MQTTConfig{Broker: b.URL(), Topic: "p1"}, &log)
	src, c := open(t, "mqtt://"+b.Addr()+"/p1")
	frames(t, c, 2, 5*time.Second)

	b.Restart(300 * time.Millisecond)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	buf := make([]byte, 4096)
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Read(buf) // what was queued, then the end
	}
	if err == nil || !strings.Contains(err.Error(), "broker connection lost") {
		t.Fatalf("Read after the restart = %v, want the lost connection", err)
	}
	c.Close()
	var c2 source.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c2, err = src.Open(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c2.Close()
	got := frames(t, c2, 2, 5*time.Second)
	assertRun(t, got, &log)
}

// TestMQTTAuth: the password comes from its file and never shows; a wrong
// one fails Open with the broker's reason.
func TestMQTTAuth(t *testing.T) {
	const pw = "s3cret-Passw0rd"
	b := mosquittotest.Start(t, mosquittotest.Config{User: "meter", Password: pw})
	good := writeFile(t, "pw", pw+"\n")
	bad := writeFile(t, "bad", "wrong-password")
	var log sentLog
	startPublisher(t, sim.MQTTConfig{Broker: b.URL(), Topic: "p1", User: "meter", Password: pw}, &log)

	src, c := open(t, "mqtt://meter@"+b.Addr()+"/p1?password_file="+good)
	if got, want := src.String(), "mqtt://meter@"+b.Addr()+"/p1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	frames(t, c, 1, 5*time.Second)

	for _, address := range []string{
		"mqtt://meter@" + b.Addr() + "/p1?password_file=" + bad,
		"mqtt://" + b.Addr() + "/p1",
	} {
		src, err := source.Parse(address, source.Options{DialTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.Open(context.Background())
		if err == nil || !strings.Contains(err.Error(), "connect to broker "+b.Addr()) {
			t.Fatalf("Open(%s) = %v, want the broker's refusal", address, err)
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "wrong-password") {
			t.Errorf("error shows the password: %v", err)
		}
		t.Logf("refused as: %v", err)
	}
}

// TestMQTTRetainedAndOtherJSON: a retained message (an old telegram the
// broker hands out at subscription) and Tasmota JSON without
// SerialReceived carry no meter bytes.
func TestMQTTRetainedAndOtherJSON(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Config{})
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("test-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(100)
	publish := func(retained bool, payload string) {
		t.Helper()
		if tok := pub.Publish("p1", 0, retained, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(true, "/OLD5\r\n\r\n!0000\r\n")
	_, c := open(t, "mqtt://"+b.Addr()+"/p1")
	publish(false, `{"Time":"2026-01-01T00:00:00","Uptime":"0T01:00:00"}`)
	publish(false, `{"SerialReceived":"/NEW5\r\n\r\n"}`)
	publish(false, `{"SerialReceived":"!1234\r\n"}`)
	got := frames(t, c, 1, 5*time.Second)
	if want := "/NEW5\r\n\r\n!1234\r\n"; string(got[0]) != want {
		t.Errorf("got %q, want %q", got[0], want)
	}
}

func TestMQTTBadAddresses(t *testing.T) {
	pw := writeFile(t, "pw", "x")
	for _, tc := range []struct{ address, want string }{
		{"mqtt://broker", "has no topic"},
		{"mqtt://broker/", "has no topic"},
		{"mqtt:///topic", "has no broker"},
		{"mqtt://broker/p1/+/telegram", "wildcard topic"},
		{"mqtt://broker/p1/#", "wildcard topic"},
		{"mqtt://broker/p1#x", "wildcard topic"},
		{"mqtt://u:pw@broker/p1", "holds a password"},
		{"mqtt://broker/p1?password_file=" + pw, "no user"},
		{"mqtt://u@broker/p1?password_file=/nonexistent", `password_file "/nonexistent" cannot be read`},
		{"mqtt://broker/p1?qos=1", `unknown option "qos"`},
		{"mqtt://broker/p1?ca_file=x", `unknown option "ca_file"`},
		{"mqtts://broker/p1?ca_file=/nonexistent", `ca_file "/nonexistent" cannot be read`},
	} {
		_, err := source.Parse(tc.address, source.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.address, err, tc.want)
		}
	}
}
