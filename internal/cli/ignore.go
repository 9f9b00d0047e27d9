package cli

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ignoreFile lists, in a definition directory, what is not sent to the
// server with the definition (application binaries, test files): one
// pattern a line, as path.Match sees them, matched against the path
// relative to the directory and against each of its parent directories;
// "dir/" matches a directory; # starts a comment.
const ignoreFile = ".gantryignore"

// loadIgnore reads a definition directory's ignore file; no file ignores
// nothing but itself.
func loadIgnore(dir string) (func(rel string, isDir bool) bool, error) {
	f, err := os.Open(filepath.Join(dir, ignoreFile))
	if os.IsNotExist(err) {
		return func(rel string, _ bool) bool { return rel == ignoreFile }, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pats []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if _, err := path.Match(strings.TrimSuffix(p, "/"), ""); err != nil {
			return nil, usageErrorf("%s:%d: bad pattern %q: %v", filepath.Join(dir, ignoreFile), n, p, err)
		}
		pats = append(pats, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", ignoreFile, err)
	}
	return func(rel string, isDir bool) bool {
		if rel == ignoreFile {
			return true
		}
		for _, p := range pats {
			dirOnly := strings.HasSuffix(p, "/")
			p = strings.TrimPrefix(strings.TrimSuffix(p, "/"), "/")
			if dirOnly && !isDir {
				continue
			}
			if ok, _ := path.Match(p, rel); ok {
				return true
			}
			if ok, _ := path.Match(p, path.Base(rel)); ok && !strings.Contains(p, "/") {
				return true
			}
		}
		return false
	}, nil
}
