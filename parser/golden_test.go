package parser

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/golden")

var (
	brussels = mustLoad("Europe/Brussels")
	dublin   = mustLoad("Europe/Dublin")
	london   = mustLoad("Europe/London")
)

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// telegramFiles returns every telegram under ../testdata used as a golden
// case: real captures, hand-made bad cases and the simulator's telegrams.
func telegramFiles(t testing.TB) []string {
	var files []string
	for _, dir := range []string{"../testdata/telegrams", "../testdata/bad", "../testdata/sim"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.txt"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 50 {
		t.Fatalf("found %d telegram files, want at least 50", len(files))
	}
	return files
}

// decodeAll runs the capture through the Splitter and Parse, the way the
// daemon and "p1logger decode" do, and renders what comes out: per telegram
// either its JSON or its error. For a telegram whose only fault is its CRC
// (the spec examples), the result with the CRC recomputed is shown as well,
// so the golden file also pins how its lines decode.
func decodeAll(raw []byte) string {
	var out strings.Builder
	var sp Splitter
	frames := splitAll(&sp, raw)
	for i, fr := range frames {
		fmt.Fprintf(&out, "# telegram %d (%d bytes)\n", i+1, len(fr))
		tg, err := Parse(fr, brussels)
		if err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
			var ce *CRCError
			if !asCRC(err, &ce) {
				if tg.CRC == CRCOK || (tg.CRC == CRCNone && isSyntaxOnly(err)) {
					out.WriteString(pretty(tg.AppendJSON(nil)))
				}
				continue
			}
			fixed := withCRC(fr)
			tg, err = Parse(fixed, brussels)
			fmt.Fprintf(&out, "with CRC recomputed: error: %v\n", err)
		}
		out.WriteString(pretty(tg.AppendJSON(nil)))
	}
	fmt.Fprintf(&out, "# skipped %d bytes outside telegrams\n", sp.Skipped)
	return out.String()
}

func asCRC(err error, ce **CRCError) bool {
	e, ok := err.(*CRCError)
	*ce = e
	return ok
}

func isSyntaxOnly(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if _, ok := e.(*SyntaxError); !ok {
				return false
			}
		}
		return true
	}
	_, ok := err.(*SyntaxError)
	return ok
}

func splitAll(sp *Splitter, raw []byte) [][]byte {
	var frames [][]byte
	data := raw
	for len(data) > 0 {
		adv, tok, _ := sp.Split(data, true)
		if tok != nil {
			frames = append(frames, append([]byte(nil), tok...))
		}
		if adv == 0 {
			break
		}
		data = data[adv:]
	}
	return frames
}

// withCRC returns the frame with its CRC field replaced by the right one.
func withCRC(fr []byte) []byte {
	bang := bytes.Index(fr, []byte("\n!")) + 1
	return fmt.Appendf(append([]byte(nil), fr[:bang+1]...), "%04X\r\n", CRC16(fr[:bang+1]))
}

func pretty(js []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, js, "", "  "); err != nil {
		return fmt.Sprintf("INVALID JSON (%v): %s\n", err, js)
	}
	b.WriteByte('\n')
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, file := range telegramFiles(t) {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeAll(raw)
			golden := filepath.Join("../testdata/golden", strings.TrimSuffix(name, ".txt")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./parser -run TestGolden -update, then review the diff)", err)
			}
			if got != string(want) {
				t.Errorf("decoded output differs from %s:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff shows the first lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n  want %s\n  got  %s\n", i+1, wl, gl)
			if shown++; shown == 8 {
				break
			}
		}
	}
	return b.String()
}

// TestManifestCRC checks that what MANIFEST.tsv says of each capture's CRC is
// what the parser finds.
func TestManifestCRC(t *testing.T) {
	m, err := os.ReadFile("../testdata/telegrams/MANIFEST.tsv")
	if err != nil {
		t.Fatal(err)
	}
	rows := strings.Split(strings.TrimSpace(string(m)), "\n")[1:]
	if len(rows) < 49 {
		t.Fatalf("MANIFEST has %d rows", len(rows))
	}
	for _, row := range rows {
		col := strings.Split(row, "\t")
		file, state := col[0], col[6]
		raw, err := os.ReadFile(filepath.Join("../testdata/telegrams", file))
		if err != nil {
			t.Fatal(err)
		}
		tg, err := Parse(raw, brussels)
		var got string
		switch {
		case err == nil && tg.CRC == CRCOK:
			got = "ok"
		case err == nil && tg.CRC == CRCNone:
			got = "none"
		case errorsIsCRC(err):
			got = "bad"
		default:
			got = "error: " + err.Error()
		}
		if got != state {
			t.Errorf("%s: crc %s, MANIFEST says %s", file, got, state)
		}
	}
}

func errorsIsCRC(err error) bool {
	_, ok := err.(*CRCError)
	return ok
}
