package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/gantry-dev/gantry/internal/diag"
)

// maxFileSize caps what file() and templatefile() read.
const maxFileSize = 4 << 20

// stdFuncs are the functions from cty's standard library (and hcl's try
// and can), by their name in expressions.
func stdFuncs() map[string]function.Function {
	return map[string]function.Function{
		// strings
		"upper":         stdlib.UpperFunc,
		"lower":         stdlib.LowerFunc,
		"title":         stdlib.TitleFunc,
		"trimspace":     stdlib.TrimSpaceFunc,
		"trim":          stdlib.TrimFunc,
		"trimprefix":    stdlib.TrimPrefixFunc,
		"trimsuffix":    stdlib.TrimSuffixFunc,
		"chomp":         stdlib.ChompFunc,
		"indent":        stdlib.IndentFunc,
		"join":          stdlib.JoinFunc,
		"split":         stdlib.SplitFunc,
		"format":        stdlib.FormatFunc,
		"formatlist":    stdlib.FormatListFunc,
		"replace":       stdlib.ReplaceFunc,
		"regex":         stdlib.RegexFunc,
		"regexall":      stdlib.RegexAllFunc,
		"regex_replace": stdlib.RegexReplaceFunc,
		"substr":        stdlib.SubstrFunc,
		"strrev":        stdlib.ReverseFunc,
		// collections
		"length":          lengthFunc,
		"concat":          stdlib.ConcatFunc,
		"merge":           stdlib.MergeFunc,
		"keys":            stdlib.KeysFunc,
		"values":          stdlib.ValuesFunc,
		"lookup":          stdlib.LookupFunc,
		"element":         stdlib.ElementFunc,
		"index":           stdlib.IndexFunc,
		"contains":        stdlib.ContainsFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"flatten":         stdlib.FlattenFunc,
		"distinct":        stdlib.DistinctFunc,
		"reverse":         stdlib.ReverseListFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"zipmap":          stdlib.ZipmapFunc,
		"range":           stdlib.RangeFunc,
		"setunion":        stdlib.SetUnionFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		// numbers
		"min":      stdlib.MinFunc,
		"max":      stdlib.MaxFunc,
		"abs":      stdlib.AbsoluteFunc,
		"ceil":     stdlib.CeilFunc,
		"floor":    stdlib.FloorFunc,
		"log":      stdlib.LogFunc,
		"pow":      stdlib.PowFunc,
		"signum":   stdlib.SignumFunc,
		"parseint": stdlib.ParseIntFunc,
		// encoding
		"jsonencode": stdlib.JSONEncodeFunc,
		"jsondecode": stdlib.JSONDecodeFunc,
		"csvdecode":  stdlib.CSVDecodeFunc,
		// conversions
		"tostring": stdlib.MakeToFunc(cty.String),
		"tonumber": stdlib.MakeToFunc(cty.Number),
		"tobool":   stdlib.MakeToFunc(cty.Bool),
		"tolist":   stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset":    stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tomap":    stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		// dates
		"formatdate": stdlib.FormatDateFunc,
		"timeadd":    stdlib.TimeAddFunc,
		// errors
		"try": tryfunc.TryFunc,
		"can": tryfunc.CanFunc,
	}
}

// newFuncs returns every function of the language, with file() and
// templatefile() reading below dir.
func newFuncs(dir string) map[string]function.Function {
	fs := stdFuncs()
	fs["file"] = fileFunc(dir)
	// A template can call everything but templatefile itself.
	inTemplate := stdFuncs()
	inTemplate["file"] = fs["file"]
	fs["templatefile"] = templateFileFunc(dir, inTemplate)
	return fs
}

// lengthFunc is length() of a string (characters), a collection, a tuple
// or an object.
var lengthFunc = function.New(&function.Spec{
	Description: "Returns the number of characters of a string or of elements of a collection.",
	Params: []function.Parameter{{
		Name:             "value",
		Type:             cty.DynamicPseudoType,
		AllowDynamicType: true,
		AllowUnknown:     true,
	}},
	Type: func(args []cty.Value) (cty.Type, error) {
		ty := args[0].Type()
		if ty == cty.String || ty == cty.DynamicPseudoType || ty.IsCollectionType() ||
			ty.IsTupleType() || ty.IsObjectType() {
			return cty.Number, nil
		}
		return cty.NilType, fmt.Errorf("value must be a string, a list, a map, a set, a tuple or an object")
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v := args[0]
		switch {
		case v.IsNull():
			return cty.NilVal, errors.New("value must not be null")
		case v.Type() == cty.String:
			return stdlib.Strlen(v)
		case !v.IsKnown():
			return cty.UnknownVal(cty.Number), nil
		case v.Type().IsObjectType():
			return cty.NumberIntVal(int64(len(v.Type().AttributeTypes()))), nil
		}
		return v.Length(), nil
	},
})

// readInside reads the file at the relative path p below dir, refusing
// absolute paths, ".." and symbolic links that lead outside dir.
func readInside(dir, p string) ([]byte, error) {
	if p == "" {
		return nil, errors.New("the path is empty")
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.VolumeName(p) != "" {
		return nil, fmt.Errorf("%q is an absolute path: give a path relative to the definition directory", p)
	}
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return nil, fmt.Errorf("%q leaves the definition directory: paths must not contain \"..\"", p)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the definition directory: %w", err)
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(p))
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("no file %q in the definition directory", p)
		case strings.Contains(err.Error(), "escapes"):
			return nil, fmt.Errorf("%q leads outside the definition directory (through a symbolic link)", p)
		}
		return nil, fmt.Errorf("cannot read %q: %v", p, errors.Unwrap(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", p, err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("%q is a directory, not a file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", p, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%q is larger than %d MiB", p, maxFileSize>>20)
	}
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%q is not UTF-8 text", p)
	}
	return b, nil
}

// fileFunc is file(path): the content of a file of the definition
// directory.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a text file of the definition directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := readInside(dir, args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

// templateFileFunc is templatefile(path, vars): a file of the definition
// directory rendered as an HCL template with vars as its variables.
func templateFileFunc(dir string, funcs map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Description: "Renders a template file of the definition directory.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowDynamicType: true},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			b, err := readInside(dir, p)
			if err != nil {
				return cty.NilVal, err
			}
			expr, hd := hclsyntax.ParseTemplate(b, p, hcl.InitialPos)
			if hd.HasErrors() {
				return cty.NilVal, templateError(hd)
			}
			vars := args[1]
			if !vars.IsKnown() {
				return cty.UnknownVal(cty.String), nil
			}
			ty := vars.Type()
			if vars.IsNull() || !(ty.IsObjectType() || ty.IsMapType()) {
				return cty.NilVal, function.NewArgErrorf(1, "vars must be an object or a map, like { port = 8080 }")
			}
			values := vars.AsValueMap()
			for _, t := range hclsyntax.Variables(expr) {
				name := t.RootName()
				if _, ok := values[name]; !ok {
					r := t.SourceRange()
					return cty.NilVal, fmt.Errorf("%s:%d:%d: the template refers to %q, which vars does not have%s",
						p, r.Start.Line, r.Start.Column, name, didYouMeanKey(name, values))
				}
			}
			v, hd := expr.Value(&hcl.EvalContext{Variables: values, Functions: funcs})
			if hd.HasErrors() {
				return cty.NilVal, templateError(hd)
			}
			if !v.IsWhollyKnown() {
				return cty.UnknownVal(cty.String), nil
			}
			s, err := convert.Convert(v, cty.String)
			if err != nil || s.IsNull() {
				return cty.NilVal, fmt.Errorf("template %q gives %s, not a string", p, v.Type().FriendlyName())
			}
			return s, nil
		},
	})
}

func didYouMeanKey(name string, values map[string]cty.Value) string {
	keys := slices.Sorted(maps.Keys(values))
	if s := diag.Suggest(name, keys); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(keys) == 0 {
		return " (vars is empty)"
	}
	return " (vars has " + strings.Join(keys, ", ") + ")"
}

// templateError is the first error of a template as
// "file:line:col: message".
func templateError(hd hcl.Diagnostics) error {
	for _, d := range hd {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject == nil {
			return errors.New(hclMessage(d))
		}
		return fmt.Errorf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, hclMessage(d))
	}
	return hd
}
