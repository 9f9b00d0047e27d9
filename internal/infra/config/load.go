package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/gantry-dev/gantry/internal/diag"
	"github.com/gantry-dev/gantry/internal/provider"
	"github.com/gantry-dev/gantry/internal/validate"
)

// ValidEnvName reports whether name can name an environment instance:
// 1 to 32 lower-case letters, digits and dashes, starting and ending with
// a letter or digit (validate.EnvName).
func ValidEnvName(name string) bool { return validate.EnvName("", name) == nil }

// topBlocks are the top-level block types and the labels each takes.
var topBlocks = map[string][]string{
	"variable": {"NAME"},
	"locals":   nil,
	"provider": {"TYPE", "NAME"},
	"network":  {"NAME"},
	"group":    {"NAME"},
	"host":     {"NAME"},
	"output":   {"NAME"},
}

var topBlockOrder = []string{"variable", "locals", "provider", "network", "group", "host", "output"}

// parsedFile is one definition file.
type parsedFile struct {
	name string
	body *hclsyntax.Body
}

// varDecl is a variable block being loaded.
type varDecl struct {
	v     *Variable
	block *hclsyntax.Block
}

// loader holds the state of one Load.
type loader struct {
	d       *Definition
	c       *collector
	files   []parsedFile
	envFile *parsedFile // envs/<env>.hcl, nil when there is none

	vars      map[string]*varDecl
	localAttr map[string]*hclsyntax.Attribute
	provInfo  map[string]*provider.Info // by TYPE.NAME; nil for an unknown type
	provBody  map[string]*hclsyntax.Block
	// machineAttrs are the sorted MachineAttrs of each provider block's type.
	machineAttrs map[string][]string
}

// Load reads the environment definition in dir (every *.hcl file directly
// in it) for environment instance env, with the variables file
// envs/<env>.hcl when there is one and the --var assignments vars
// ("NAME=VALUE"). It checks everything that can be checked before
// resources exist and returns every problem found as diag.Diagnostics.
// Other errors (an unreadable directory) are plain errors.
func Load(dir, env string, vars []string) (*Definition, error) {
	if err := validate.EnvName("--env", env); err != nil {
		return nil, diag.Diagnostics{{Field: "--env", Message: "invalid " + err.(*validate.Error).Msg}}
	}
	l := &loader{
		d: &Definition{
			Env:       env,
			Dir:       dir,
			Files:     map[string][]byte{},
			Vars:      map[string]cty.Value{},
			Locals:    map[string]cty.Value{},
			Providers: map[string]*Provider{},
			Networks:  map[string]*Block{},
			Groups:    map[string]*Block{},
			Hosts:     map[string]*Block{},
			Outputs:   map[string]*Block{},
			Variables: map[string]*Variable{},
			sources:   map[string]*diag.Source{},
			funcs:     newFuncs(dir),
		},
		vars:         map[string]*varDecl{},
		localAttr:    map[string]*hclsyntax.Attribute{},
		provInfo:     map[string]*provider.Info{},
		provBody:     map[string]*hclsyntax.Block{},
		machineAttrs: map[string][]string{},
	}
	l.c = &collector{sources: l.d.sources}
	if err := l.readFiles(); err != nil {
		return nil, err
	}
	if l.c.count() > 0 { // syntax errors: the rest would only add noise
		return nil, l.c.list.Err()
	}
	l.collect()
	l.resolveVars(vars)
	l.evalLocals()
	l.d.base = map[string]cty.Value{
		"var":   objectOrEmpty(l.d.Vars),
		"local": objectOrEmpty(l.d.Locals),
		"env":   cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(env)}),
	}
	l.configureProviders()
	l.checkResources()
	l.checkLoadBalancers()
	l.order()
	l.d.planned = l.d.computePlanWorld()
	l.staticEval()
	if err := l.c.list.Err(); err != nil {
		return nil, err
	}
	return l.d, nil
}

// readFiles reads and parses the definition files and the variables file.
func (l *loader) readFiles() error {
	entries, err := os.ReadDir(l.d.Dir)
	if err != nil {
		return fmt.Errorf("read environment definition: %w", err)
	}
	var names []string
	var srcs [][]byte
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".hcl") || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		path := filepath.Join(l.d.Dir, name)
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read environment definition: %w", err)
		}
		names, srcs = append(names, name), append(srcs, src)
	}
	if len(names) == 0 {
		return fmt.Errorf("read environment definition: no .hcl files in %s", l.d.Dir)
	}
	name := "envs/" + l.d.Env + ".hcl"
	src, err := os.ReadFile(filepath.Join(l.d.Dir, "envs", l.d.Env+".hcl"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read variables file: %w", err)
	default:
		names, srcs = append(names, name), append(srcs, src)
	}
	// Parsing is most of the work for big definitions: one file per
	// worker at a time.
	files := make([]*hcl.File, len(names))
	hds := make([]hcl.Diagnostics, len(names))
	parallel(len(names), func(i int) {
		files[i], hds[i] = hclsyntax.ParseConfig(srcs[i], names[i], hcl.InitialPos)
	})
	for i, name := range names {
		l.d.Files[name] = srcs[i]
		l.d.sources[name] = diag.NewSource(name, srcs[i])
		l.c.hcl(hds[i], "")
		body, _ := files[i].Body.(*hclsyntax.Body)
		if body == nil {
			body = &hclsyntax.Body{}
		}
		f := parsedFile{name: name, body: body}
		if strings.HasPrefix(name, "envs/") {
			l.envFile = &f
		} else {
			l.files = append(l.files, f)
		}
	}
	return nil
}

// parallel calls fn(0) ... fn(n-1) on up to GOMAXPROCS goroutines and
// returns when all have returned.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// collect is the first pass: every declaration, with the checks that need
// no other block.
func (l *loader) collect() {
	for _, f := range l.files {
		for _, a := range sortedAttrs(f.body) {
			l.c.at(a.NameRange, "", "unexpected attribute %q at the top level: put it in a locals block (locals { %s = ... }) or in a block it belongs to",
				a.Name, a.Name)
		}
		for _, blk := range f.body.Blocks {
			l.collectBlock(f.name, blk)
		}
	}
	// Groups and hosts share a namespace: both name machines and labels.
	for _, name := range slices.Sorted(maps.Keys(l.d.Hosts)) {
		if g, ok := l.d.Groups[name]; ok {
			h := l.d.Hosts[name]
			l.c.at(h.DefRange, fieldOf(KindHost, []string{name}), "the name is already used by group %q (%s): groups and hosts need different names",
				name, posString(g.DefRange))
		}
	}
}

func (l *loader) collectBlock(file string, blk *hclsyntax.Block) {
	want, known := topBlocks[blk.Type]
	if !known {
		hint := diag.DidYouMean(blk.Type, topBlockOrder)
		if hint == "" {
			hint = "; expected variable, locals, provider, network, group, host or output"
		}
		l.c.at(blk.TypeRange, "", "unsupported block type %q%s", blk.Type, hint)
		return
	}
	if len(blk.Labels) != len(want) {
		rng := blk.TypeRange
		if len(blk.Labels) > 0 {
			rng = blk.LabelRanges[0]
		}
		switch len(want) {
		case 0:
			l.c.at(rng, "", "a %s block takes no labels: %s { ... }", blk.Type, blk.Type)
		case 1:
			l.c.at(rng, "", "a %s block needs one label, its name: %s \"NAME\" { ... }", blk.Type, blk.Type)
		default:
			l.c.at(rng, "", "a %s block needs two labels, its type and its name: %s \"TYPE\" \"NAME\" { ... }", blk.Type, blk.Type)
		}
		return
	}
	switch blk.Type {
	case "variable":
		l.collectVariable(blk)
	case "locals":
		l.collectLocals(blk)
	case "provider":
		l.collectProvider(blk)
	case "output":
		l.collectResource(file, KindOutput, blk, l.d.Outputs)
	case KindNetwork:
		l.collectResource(file, KindNetwork, blk, l.d.Networks)
	case KindGroup:
		l.collectResource(file, KindGroup, blk, l.d.Groups)
	case KindHost:
		l.collectResource(file, KindHost, blk, l.d.Hosts)
	}
}

// identLabel checks a label that expressions use as an identifier.
func (l *loader) identLabel(blk *hclsyntax.Block, i int, what string) bool {
	if hclsyntax.ValidIdentifier(blk.Labels[i]) {
		return true
	}
	l.c.at(blk.LabelRanges[i], "", "invalid %s name %q: use letters, digits, underscores and dashes, starting with a letter", what, blk.Labels[i])
	return false
}

func (l *loader) collectResource(file, kind string, blk *hclsyntax.Block, into map[string]*Block) {
	name := blk.Labels[0]
	b := &Block{Kind: kind, Name: name, Body: blk.Body, DefRange: blk.DefRange(), File: file, body: blk.Body,
		field: fieldOf(kind, blk.Labels)}
	if kind == KindOutput {
		if !l.identLabel(blk, 0, "output") {
			return
		}
	} else if err := validate.DNSLabel("", kind+" name", name, validate.MaxBlockName); err != nil {
		l.c.at(blk.LabelRanges[0], "", "invalid %s (it becomes part of host names)", err.(*validate.Error).Msg)
	}
	if prev, dup := into[name]; dup {
		l.c.at(b.DefRange, "", "duplicate %s %q: it is already defined at %s", kind, name, posString(prev.DefRange))
		return
	}
	into[name] = b
}

func (l *loader) collectVariable(blk *hclsyntax.Block) {
	name := blk.Labels[0]
	if !l.identLabel(blk, 0, "variable") {
		return
	}
	if prev, dup := l.vars[name]; dup {
		l.c.at(blk.DefRange(), "", "duplicate variable %q: it is already defined at %s", name, posString(prev.v.DefRange))
		return
	}
	v := &Variable{Name: name, Type: cty.DynamicPseudoType, DefRange: blk.DefRange()}
	l.vars[name] = &varDecl{v: v, block: blk}
	l.d.Variables[name] = v
	l.checkShape(blk.Body, fieldOf("variable", blk.Labels), []string{"type", "default", "description"}, nil)
}

func (l *loader) collectLocals(blk *hclsyntax.Block) {
	for _, nested := range blk.Body.Blocks {
		l.c.at(nested.TypeRange, "locals."+nested.Type, "unsupported block type: locals holds attributes only (name = value)")
	}
	for _, a := range sortedAttrs(blk.Body) {
		if prev, dup := l.localAttr[a.Name]; dup {
			l.c.at(a.NameRange, "locals."+a.Name, "duplicate local value: it is already defined at %s", posString(prev.NameRange))
			continue
		}
		l.localAttr[a.Name] = a
	}
}

func (l *loader) collectProvider(blk *hclsyntax.Block) {
	typ, name := blk.Labels[0], blk.Labels[1]
	if !l.identLabel(blk, 1, "provider") {
		return
	}
	key := typ + "." + name
	if prev, dup := l.d.Providers[key]; dup {
		l.c.at(blk.DefRange(), "", "duplicate provider %q %q: it is already defined at %s", typ, name, posString(prev.Range))
		return
	}
	l.d.Providers[key] = &Provider{Type: typ, Name: name, Config: map[string]string{}, Range: blk.DefRange()}
	l.provBody[key] = blk
	f, err := provider.Lookup(typ)
	if err != nil {
		known := provider.Types()
		hint := diag.DidYouMean(typ, known)
		list := "none are registered"
		if len(known) > 0 {
			list = "known types: " + strings.Join(known, ", ")
		}
		l.c.at(blk.LabelRanges[0], fieldOf("provider", blk.Labels), "unknown provider type %q%s; %s", typ, hint, list)
		l.provInfo[key] = nil
		return
	}
	info := f.Info
	l.provInfo[key] = &info
	l.machineAttrs[key] = slices.Sorted(maps.Keys(info.MachineAttrs))
	l.checkShape(blk.Body, fieldOf("provider", blk.Labels), slices.Sorted(maps.Keys(info.Config)), nil)
}

// checkShape reports the attributes of body not in attrs and the nested
// blocks not in blocks (nil: none allowed). It does not look into nested
// blocks.
func (l *loader) checkShape(body *hclsyntax.Body, field string, attrs, blocks []string) {
	for _, a := range sortedAttrs(body) {
		if contains(attrs, a.Name) {
			continue
		}
		if contains(blocks, a.Name) {
			l.c.at(a.NameRange, field+"."+a.Name, "%s is a block, not an attribute: write %s { ... }", a.Name, a.Name)
			continue
		}
		l.c.at(a.NameRange, field+"."+a.Name, "unsupported attribute%s", expected(a.Name, attrs))
	}
	for _, blk := range body.Blocks {
		if contains(blocks, blk.Type) {
			continue
		}
		if contains(attrs, blk.Type) {
			l.c.at(blk.TypeRange, field+"."+blk.Type, "%s is an attribute, not a block: write %s = ...", blk.Type, blk.Type)
			continue
		}
		hint := diag.DidYouMean(blk.Type, blocks)
		if hint == "" && len(blocks) == 0 {
			hint = ": no blocks are allowed here"
		}
		l.c.at(blk.TypeRange, field+"."+blk.Type, "unsupported block type%s", hint)
	}
}

// expected is a did-you-mean for name among attrs, or the list of attrs.
func expected(name string, attrs []string) string {
	if hint := diag.DidYouMean(name, attrs); hint != "" {
		return hint
	}
	if len(attrs) == 0 {
		return ": no attributes are allowed here"
	}
	return "; expected " + orList(attrs)
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
