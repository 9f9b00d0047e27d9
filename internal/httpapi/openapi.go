package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// openapi serves an OpenAPI 3.0 document generated from the route table and
// the Go wire types (by reflection), so it always matches the routes.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, a.OpenAPI())
}

// OpenAPI returns the document as a JSON-ready value.
func (a *API) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range a.routes() {
		op := map[string]any{"summary": rt.Summary, "operationId": operationID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if rt.Idempotent {
			params = append(params, map[string]any{"name": IdempotencyKeyHeader, "in": "header", "description": "a retry with the same key returns the first result instead of creating again (kept 24 h)", "schema": map[string]any{"type": "string", "maxLength": 255}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.RawBody != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{rt.RawBody: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema(reflect.TypeOf(rt.Body))}}}
		}
		status := rt.Status
		if status == 0 {
			status = 200
		}
		resp := map[string]any{"description": http.StatusText(status)}
		if rt.Resp != nil {
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": schema(reflect.TypeOf(rt.Resp))}}
		}
		op["responses"] = map[string]any{
			itoa(status): resp,
			"default":    map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		}
		if rt.Public {
			op["security"] = []any{}
		}
		p, _ := paths[rt.Path].(map[string]any)
		if p == nil {
			p = map[string]any{}
			paths[rt.Path] = p
		}
		p[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi":  "3.0.3",
		"info":     map[string]any{"title": "gantry API", "version": "v1"},
		"paths":    paths,
		"security": []any{map[string]any{"bearer": []any{}}},
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas": map[string]any{"Error": map[string]any{"type": "object", "properties": map[string]any{
				"error": map[string]any{"type": "string"}, "code": map[string]any{"type": "string"}}}},
		},
	}
}

func operationID(rt route) string {
	s := strings.NewReplacer("/api/v1/", "", "/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(rt.Path)
	return strings.ToLower(rt.Method) + "_" + strings.Trim(s, "_")
}

func itoa(i int) string { return strconv.Itoa(i) }

var timeType = reflect.TypeOf(time.Time{})

// schema is a JSON schema of a Go type, from its json tags.
func schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schema(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				for k, v := range schema(f.Type)["properties"].(map[string]any) {
					props[k] = v
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = schema(f.Type)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}
