package appspec

import "testing"

// A hook location with a leading slash means the bundle root, as in
// CodeDeploy, so that existing bundles deploy unchanged.
func TestLeadingSlashLocationIsBundleRelative(t *testing.T) {
	spec, err := Parse("appspec.yml", []byte("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: /scripts/a.sh\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.HookScripts("AfterInstall"); len(got) != 1 || got[0].Location != "scripts/a.sh" {
		t.Fatalf("hooks: %+v", got)
	}
}
