package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gantry-dev/gantry/internal/atomicfile"
)

// profile is what 'gantry login' saves: the server to talk to, the API
// token to use with it and the fingerprint of the server's CA ("" for a
// plain http:// server or one trusted by the system's roots).
type profile struct {
	Server        string `json:"server"`
	Token         string `json:"token"`
	CAFingerprint string `json:"ca_fingerprint,omitempty"`
}

// profilePath locates the profile file: $GANTRY_CONFIG, else
// $XDG_CONFIG_HOME/gantry/config.json, else ~/.config/gantry/config.json.
func profilePath(env func(string) string) (string, error) {
	if p := env("GANTRY_CONFIG"); p != "" {
		return p, nil
	}
	if x := env("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "gantry", "config.json"), nil
	}
	home := env("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot locate the profile: set GANTRY_CONFIG or HOME: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "gantry", "config.json"), nil
}

// loadProfile reads a profile; a missing file is an empty profile.
func loadProfile(path string) (profile, error) {
	var p profile
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("reading profile: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("profile %s is not valid JSON (fix or delete it, then run 'gantry login'): %w", path, err)
	}
	return p, nil
}

// saveProfile writes a profile atomically (temporary file and rename) with
// mode 0600, creating its directory with mode 0700 if needed.
func saveProfile(path string, p profile) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating profile directory: %w", err)
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving profile: %w", err)
	}
	return nil
}
