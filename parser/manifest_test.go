package parser

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManifestLicence checks that MANIFEST.tsv has a row for every capture
// in testdata/telegrams and that each row says under which terms its source
// publishes it, and on what evidence: a packager reads these columns to
// decide what may be shipped (testdata/README.md).
func TestManifestLicence(t *testing.T) {
	m, err := os.ReadFile("../testdata/telegrams/MANIFEST.tsv")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(m)), "\n")
	header := strings.Split(lines[0], "\t")
	col := map[string]int{}
	for i, name := range header {
		col[name] = i
	}
	for _, name := range []string{"file", "source_repo", "licence", "licence_evidence"} {
		if _, ok := col[name]; !ok {
			t.Fatalf("MANIFEST.tsv has no column %q (header %q)", name, header)
		}
	}
	listed := map[string]bool{}
	for i, line := range lines[1:] {
		row := strings.Split(line, "\t")
		if len(row) != len(header) {
			t.Errorf("row %d (%s): %d columns, header has %d", i+2, row[0], len(row), len(header))
			continue
		}
		listed[row[col["file"]]] = true
		if strings.TrimSpace(row[col["licence"]]) == "" || strings.TrimSpace(row[col["licence_evidence"]]) == "" {
			t.Errorf("%s (from %s): no licence or no evidence for it", row[col["file"]], row[col["source_repo"]])
		}
	}
	files, err := filepath.Glob("../testdata/telegrams/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in MANIFEST.tsv: record its source and licence", filepath.Base(f))
		}
	}
}
