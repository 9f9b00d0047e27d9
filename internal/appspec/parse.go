package appspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/gantry-dev/gantry/internal/diag"
)

// Parse reads an appspec.yml. file names it in diagnostics (e.g.
// "appspec.yml"); src is its content. It checks the whole file and, when
// anything is wrong, returns a nil AppSpec and a diag.Diagnostics that lists
// every problem found, sorted by line. The AppSpec it returns otherwise has
// its defaults filled in.
func Parse(file string, src []byte) (*AppSpec, error) {
	p := &parser{src: diag.NewSource(file, src), mergeBudget: maxMerged}
	spec := p.parse()
	p.ds = dedupe(p.ds)
	if err := p.ds.Err(); err != nil {
		return nil, err
	}
	return spec, nil
}

// maxMerged bounds the entries that merge keys may bring in, so that a small
// file of nested merges cannot make Parse do exponential work.
const maxMerged = 10000

type parser struct {
	src         *diag.Source
	ds          diag.Diagnostics
	mergeBudget int
}

// errorf records a problem at node n (nil: the file as a whole).
func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.ds = append(p.ds, p.src.Errorf(line, col, field, format, args...))
}

func dedupe(ds diag.Diagnostics) diag.Diagnostics {
	var out diag.Diagnostics
	for _, d := range ds {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

var topKeys = []string{"version", "os", "files", "file_exists_behavior", "permissions", "hooks"}

var topHints = map[string]string{
	"Resources": "Resources belongs to the appspec files of ECS and Lambda deployments; " +
		"gantry deploys EC2/on-premises bundles, whose appspec.yml has version, os, files, permissions and hooks",
}

func (p *parser) parse() *AppSpec {
	root := p.document()
	if root == nil {
		return nil
	}
	if resolve(root).Kind != yaml.MappingNode {
		p.errorf(root, "", "an appspec.yml must be a mapping of keys (version, os, files, hooks, …), got %s", describe(root))
		return nil
	}
	f := p.fields(root, "", topKeys, topHints)
	spec := &AppSpec{
		Version:            Version,
		OS:                 OSLinux,
		FileExistsBehavior: FileExistsDisallow,
		Hooks:              map[string][]Hook{},
	}

	if e, ok := f.get("version"); !ok {
		if f.missing("version") {
			p.errorf(root, "", `missing required key "version" (add "version: 0.0")`)
		}
	} else if !isVersion(e.val) {
		p.errorf(e.val, "version", "must be 0.0, got %s", describe(e.val))
	}

	if e, ok := f.get("os"); !ok {
		if f.missing("os") {
			p.errorf(root, "", `missing required key "os" (add "os: linux")`)
		}
	} else {
		switch s, isText := scalarText(e.val); {
		case isText && s == OSLinux:
		case isText && s == "windows":
			p.errorf(e.val, "os", "windows is not supported by gantry (only linux)")
		case isText:
			p.errorf(e.val, "os", "unknown operating system %q; valid values: linux (windows is not supported by gantry)", s)
		default:
			p.errorf(e.val, "os", "must be linux, got %s", describe(e.val))
		}
	}

	if v, ok := f.value("files"); ok {
		items, _ := p.list(v, "files", "a list of {source, destination} mappings")
		for i, item := range items {
			if file, ok := p.file(item, fmt.Sprintf("files[%d]", i)); ok {
				spec.Files = append(spec.Files, file)
			}
		}
	}

	if v, ok := f.value("file_exists_behavior"); ok {
		values := []string{FileExistsDisallow, FileExistsOverwrite, FileExistsRetain}
		s, isText := scalarText(v)
		if isText && slices.Contains(values, s) {
			spec.FileExistsBehavior = s
		} else {
			hint := ""
			if isText {
				hint = diag.DidYouMean(s, values)
			}
			p.errorf(v, "file_exists_behavior", "must be DISALLOW, OVERWRITE or RETAIN, got %s%s", describe(v), hint)
		}
	}

	if v, ok := f.value("permissions"); ok {
		items, _ := p.list(v, "permissions", "a list of mappings with object, owner, mode, …")
		for i, item := range items {
			if perm, ok := p.permission(item, fmt.Sprintf("permissions[%d]", i)); ok {
				spec.Permissions = append(spec.Permissions, perm)
			}
		}
	}

	if v, ok := f.value("hooks"); ok {
		p.hooks(v, spec)
	}
	return spec
}

// document decodes the YAML and returns the root node of its only document,
// or nil after recording why there is none.
func (p *parser) document() *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(p.src.Src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.empty()
		} else {
			p.syntaxError(err)
		}
		return nil
	}
	root := docRoot(&doc)
	if root == nil {
		p.empty()
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntaxError(err)
	default:
		if r := docRoot(&extra); r != nil {
			p.errorf(r, "", "a second YAML document starts here; an appspec.yml holds exactly one (remove the --- line before it)")
		}
	}
	return root
}

func (p *parser) empty() {
	p.errorf(nil, "", `the file is empty; an appspec.yml needs at least "version: 0.0" and "os: linux"`)
}

// docRoot returns the content of a document node, nil for an empty document.
func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" && root.Value == "" && root.Style == 0 {
		return nil
	}
	return root
}

func isVersion(n *yaml.Node) bool {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		return false
	}
	switch n.ShortTag() {
	case "!!str":
		return n.Value == Version
	case "!!int", "!!float":
		// The CodeDeploy agent compares with the number 0.0, so that 0 and
		// 0.00 pass too.
		f, err := strconv.ParseFloat(n.Value, 64)
		return err == nil && f == 0
	}
	return false
}

// list returns the items of a sequence, or false after recording that n is
// not one; what describes the expected value.
func (p *parser) list(n *yaml.Node, field, what string) ([]*yaml.Node, bool) {
	seq := resolve(n)
	if seq.Kind != yaml.SequenceNode {
		p.errorf(n, field, "must be %s, got %s", what, describe(n))
		return nil, false
	}
	return seq.Content, true
}

// mappingOf reports whether n is a mapping, recording the problem if not.
func (p *parser) mappingOf(n *yaml.Node, field, what string) bool {
	if resolve(n).Kind != yaml.MappingNode {
		p.errorf(n, field, "must be %s, got %s", what, describe(n))
		return false
	}
	return true
}

var fileHints = map[string]string{
	"overwrite": "to replace files that already exist, set file_exists_behavior: OVERWRITE at the top level",
}

func (p *parser) file(item *yaml.Node, field string) (File, bool) {
	if !p.mappingOf(item, field, "a mapping with source and destination") {
		return File{}, false
	}
	before := len(p.ds)
	f := p.fields(item, field, []string{"source", "destination"}, fileHints)
	var file File
	if e, ok := f.get("source"); ok {
		file.Source, _ = p.bundlePath(e.val, field+".source")
	} else if f.missing("source") {
		p.errorf(item, field, `missing required key "source" (a path in the bundle, / for all of it)`)
	}
	if e, ok := f.get("destination"); ok {
		file.Destination, _ = p.absPath(e.val, field+".destination")
	} else if f.missing("destination") {
		p.errorf(item, field, `missing required key "destination" (an absolute path on the host)`)
	}
	return file, len(p.ds) == before
}
