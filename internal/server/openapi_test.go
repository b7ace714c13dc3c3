package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-dev/portcullis/internal/enroll"
)

// spec is docs/openapi.yaml, read once.
type spec struct {
	Paths      map[string]map[string]operation `yaml:"paths"`
	Components struct {
		Responses map[string]response `yaml:"responses"`
		Schemas   map[string]schema   `yaml:"schemas"`
	} `yaml:"components"`
}

type operation struct {
	Responses map[string]response `yaml:"responses"`
}

type response struct {
	Ref     string `yaml:"$ref"`
	Content map[string]struct {
		Schema schema `yaml:"schema"`
	} `yaml:"content"`
}

type schema struct {
	Ref        string            `yaml:"$ref"`
	Type       string            `yaml:"type"`
	Properties map[string]schema `yaml:"properties"`
	Items      *schema           `yaml:"items"`
}

var loadSpec = sync.OnceValues(func() (*spec, error) {
	data, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		return nil, err
	}
	var s spec
	return &s, yaml.Unmarshal(data, &s)
})

func (s *spec) resolve(sc schema) schema {
	for sc.Ref != "" {
		sc = s.Components.Schemas[strings.TrimPrefix(sc.Ref, "#/components/schemas/")]
	}
	return sc
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

func normalize(path string) string { return paramRE.ReplaceAllString(path, "{}") }

// TestOpenAPIRoutes: every route the server has is documented, and every
// documented path is a route.
func TestOpenAPIRoutes(t *testing.T) {
	sp, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, enroll.Config{})
	var routes, documented []string
	for _, r := range e.srv.Routes() {
		method, path, _ := strings.Cut(r, " ")
		routes = append(routes, method+" "+normalize(path))
	}
	for path, ops := range sp.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+normalize(path))
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	if !slices.Equal(routes, documented) {
		t.Errorf("routes and docs/openapi.yaml differ:\nroutes:     %v\ndocumented: %v", routes, documented)
	}
}

// exchange is one answer the API gave during a test.
type exchange struct {
	method, path string
	status       int
	contentType  string
	body         []byte
}

// recorder keeps every exchange through h.
type recorder struct {
	mu   sync.Mutex
	seen []exchange
	h    http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	r.mu.Lock()
	r.seen = append(r.seen, exchange{req.Method, req.URL.Path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()})
	r.mu.Unlock()
}

// checkAgainstSpec fails t for an answer docs/openapi.yaml does not
// describe: an undocumented status, or a JSON field the schema lacks.
func checkAgainstSpec(t testing.TB, seen []exchange) {
	sp, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range seen {
		op, tmpl, ok := sp.find(x.method, x.path)
		if !ok {
			t.Errorf("%s %s: no such path in docs/openapi.yaml", x.method, x.path)
			continue
		}
		resp, ok := op.Responses[strconv.Itoa(x.status)]
		if !ok {
			t.Errorf("%s %s answered %d, which docs/openapi.yaml does not list", x.method, tmpl, x.status)
			continue
		}
		if resp.Ref != "" {
			resp = sp.Components.Responses[strings.TrimPrefix(resp.Ref, "#/components/responses/")]
		}
		if !strings.HasPrefix(x.contentType, "application/json") {
			continue
		}
		c, ok := resp.Content["application/json"]
		if !ok {
			t.Errorf("%s %s %d: JSON answer, documented without application/json", x.method, tmpl, x.status)
			continue
		}
		var v any
		if err := json.Unmarshal(x.body, &v); err != nil {
			t.Errorf("%s %s %d: not JSON: %v", x.method, tmpl, x.status, err)
			continue
		}
		if err := sp.check(c.Schema, v, tmpl); err != "" {
			t.Errorf("%s %s %d: %s", x.method, tmpl, x.status, err)
		}
	}
}

func (s *spec) find(method, path string) (operation, string, bool) {
	for tmpl, ops := range s.Paths {
		if matchTemplate(tmpl, path) {
			if op, ok := ops[strings.ToLower(method)]; ok {
				return op, tmpl, true
			}
		}
	}
	return operation{}, "", false
}

// matchTemplate reports whether path fits tmpl, a {param} standing for
// one non-empty segment.
func matchTemplate(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") {
			if ps[i] == "" {
				return false
			}
		} else if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// check reports the first field of v that sc does not document.
func (s *spec) check(sc schema, v any, at string) string {
	sc = s.resolve(sc)
	switch val := v.(type) {
	case map[string]any:
		if sc.Properties == nil {
			return "" // a map of anything (stats' counts, evidence)
		}
		for k, sub := range val {
			p, ok := sc.Properties[k]
			if !ok {
				return "field " + at + "." + k + " is not in docs/openapi.yaml"
			}
			if msg := s.check(p, sub, at+"."+k); msg != "" {
				return msg
			}
		}
	case []any:
		if sc.Items != nil {
			for _, it := range val {
				if msg := s.check(*sc.Items, it, at+"[]"); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}
