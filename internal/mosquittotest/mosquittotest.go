// Package mosquittotest starts a real Mosquitto broker for tests, on a free
// loopback port with a generated configuration, and can restart it on the
// same port (a broker restart is what MQTT sources must survive).
//
// The broker is /usr/sbin/mosquitto (Debian package mosquitto, which .ci/run
// installs). Where it is missing, Start skips the test saying so, except
// under CI (CI set), where a missing broker fails the test: CI must run
// every MQTT test.
package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binary is the broker started.
const Binary = "/usr/sbin/mosquitto"

// Broker is a running Mosquitto.
type Broker struct {
	t    testing.TB
	dir  string
	port int
	conf string
	cmd  *exec.Cmd
	done chan struct{}
}

// Config says who may connect: anyone, when User is empty; else only User
// with Password.
type Config struct {
	User, Password string
}

// Start starts a broker that stops when the test ends.
func Start(t testing.TB, cfg Config) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto: %s missing under CI (.ci/run installs the Debian package mosquitto)", Binary)
		}
		t.Skipf("mosquitto: %s not installed (apt-get install mosquitto; .ci/run does): MQTT test skipped", Binary)
	}
	b := &Broker{t: t, dir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var conf strings.Builder
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\npersistence false\nlog_dest file %s\nlog_type all\n", b.port, filepath.Join(b.dir, "mosquitto.log"))
	if os.Geteuid() == 0 {
		// As root, mosquitto would switch to user mosquitto, which cannot
		// read the test's files.
		conf.WriteString("user root\n")
	}
	if cfg.User == "" {
		conf.WriteString("allow_anonymous true\n")
	} else {
		pw := filepath.Join(b.dir, "passwd")
		if err := os.WriteFile(pw, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/usr/bin/mosquitto_passwd", "-b", pw, cfg.User, cfg.Password).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		fmt.Fprintf(&conf, "allow_anonymous false\npassword_file %s\n", pw)
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// Addr returns host:port of the broker.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// URL returns the broker as paho's client wants it: tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

func (b *Broker) start() {
	b.t.Helper()
	b.cmd = exec.Command(Binary, "-c", b.conf)
	// Its log goes to its file (see Log); stderr only repeats "should not
	// be run as root".
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(b.cmd, b.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-b.done:
			b.t.Fatalf("mosquitto exited at start; its log:\n%s", b.Log())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %s within 10s: %v", b.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the broker (SIGTERM, then SIGKILL after 5 s). It may be
// called more than once.
func (b *Broker) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
}

// Restart stops the broker and starts it again on the same port, after
// down: every client loses its connection and its subscriptions.
func (b *Broker) Restart(down time.Duration) {
	b.t.Helper()
	b.Stop()
	time.Sleep(down)
	b.start()
}

// Log returns the broker's log so far.
func (b *Broker) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
	return string(out)
}
