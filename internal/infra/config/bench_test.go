package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBig writes a definition of n groups, each referring to the previous
// one, in ten files.
func writeBig(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	head := `provider "testcloud" "local" {}
network "net" {
  provider = provider.testcloud.local
}
variable "image" {
  default = "base:dev"
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(head), 0o644); err != nil {
		tb.Fatal(err)
	}
	const files = 10
	var b [files]strings.Builder
	for i := range n {
		w := &b[i%files]
		fmt.Fprintf(w, "group \"g%d\" {\n  provider = provider.testcloud.local\n  image = var.image\n  networks = [network.net]\n", i)
		fmt.Fprintf(w, "  labels = { role = \"r%d\" }\n  size {\n    memory = \"1GiB\"\n  }\n", i%7)
		if i > 0 {
			fmt.Fprintf(w, "  configure = \"peer=${group.g%d.hosts[0].address}\"\n", i-1)
		}
		w.WriteString("}\n")
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("groups%d.hcl", i)), []byte(b[i].String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func TestLoadBig(t *testing.T) {
	dir := writeBig(t, 1000)
	d := mustLoad(t, dir, "big")
	g := d.Graph()
	if len(g) != 1001 || g[0].Address() != "network.net" || g[1].Address() != "group.g0" || g[1000].Address() != "group.g999" {
		t.Fatalf("graph: %d blocks, first %s, last %s", len(g), g[0].Address(), g[len(g)-1].Address())
	}
}

// BenchmarkLoad10k loads and orders a definition of 10,000 groups.
func BenchmarkLoad10k(b *testing.B) {
	dir := writeBig(b, 10000)
	b.ResetTimer()
	for b.Loop() {
		d, err := Load(dir, "big", nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Graph()) != 10001 {
			b.Fatal("wrong graph")
		}
	}
}
