package agentenv

import (
	"slices"
	"testing"
)

func TestMinimal(t *testing.T) {
	tests := []struct {
		name          string
		parent, extra []string
		want          []string
	}{
		{"keeps only the kept variables",
			[]string{"GANTRY_ADMIN_TOKEN=secret", "PATH=/bin", "HOME=/root", "DATABASE_URL=postgres://x", "LANG=C.UTF-8", "TZ=UTC", "LC_ALL=C", "SSH_AUTH_SOCK=/tmp/a"},
			[]string{"GANTRY_JOIN_TOKEN=tok"},
			[]string{"PATH=/bin", "HOME=/root", "LANG=C.UTF-8", "TZ=UTC", "LC_ALL=C", "GANTRY_JOIN_TOKEN=tok"}},
		{"default PATH", []string{"HOME=/h", "junk"}, nil, []string{"HOME=/h", "PATH=" + DefaultPath}},
		{"a prefix is not a match", []string{"PATHX=1", "HOMER=2"}, nil, []string{"PATH=" + DefaultPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Minimal(tt.parent, tt.extra...); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
