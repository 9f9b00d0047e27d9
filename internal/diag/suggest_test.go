package diag

import "testing"

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"hooks", "hooks", 0},
		{"hook", "hooks", 1},
		{"verison", "version", 1}, // a swap counts once
		{"destiantion", "destination", 1},
		{"kitten", "sitting", 3},
		{"Hooks", "hooks", 1}, // case-sensitive
		{"é", "e", 1},         // runes, not bytes
		{"ca", "abc", 3},      // optimal string alignment, not full Damerau
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	top := []string{"version", "os", "files", "file_exists_behavior", "permissions", "hooks"}
	events := []string{"ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"}
	tests := []struct {
		word       string
		candidates []string
		want       string
	}{
		{"hook", top, "hooks"},
		{"Hooks", top, "hooks"},
		{"verison", top, "version"},
		{"file", top, "files"},
		{"permission", top, "permissions"},
		{"file_exist_behavior", top, "file_exists_behavior"},
		{"OS", top, "os"},
		{"od", top, "os"},
		{"xx", top, ""},
		{"Resources", top, ""},
		{"hooks", top, ""}, // equal: nothing to suggest
		{"BeforeInstal", events, "BeforeInstall"},
		{"beforeinstall", events, "BeforeInstall"},
		{"AfterInstal", events, "AfterInstall"},
		{"ApplicationStrat", events, "ApplicationStart"},
		{"ApplicationStopp", events, "ApplicationStop"},
		{"ValidateServices", events, "ValidateService"},
		{"Validate", events, ""},
		{"x", nil, ""},
	}
	for _, tt := range tests {
		if got := Suggest(tt.word, tt.candidates); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	if got, want := DidYouMean("hook", []string{"hooks"}), ` (did you mean "hooks"?)`; got != want {
		t.Errorf("DidYouMean() = %q, want %q", got, want)
	}
	if got := DidYouMean("zzz", []string{"hooks"}); got != "" {
		t.Errorf("DidYouMean() = %q, want empty", got)
	}
}
