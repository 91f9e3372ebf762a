package httpapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/domain"
)

// writerFiles are the only files that may write an answer: endpoint.go
// writes what handlers return, problem.go maps their errors.
var writerFiles = []string{"endpoint.go", "problem.go"}

// ginWriters are the *gin.Context methods that write a status or a body.
var ginWriters = map[string]bool{
	"JSON": true, "PureJSON": true, "IndentedJSON": true, "SecureJSON": true, "AsciiJSON": true, "JSONP": true,
	"Data": true, "DataFromReader": true, "String": true, "XML": true, "YAML": true, "TOML": true, "ProtoBuf": true,
	"HTML": true, "Render": true, "Status": true, "AbortWithStatus": true, "AbortWithStatusJSON": true,
	"AbortWithError": true, "Redirect": true, "File": true, "FileAttachment": true, "FileFromFS": true,
	"Stream": true, "SSEvent": true, "Negotiate": true,
}

// mapperFuncs are the writing functions only the writer files may call or
// build: the error writer, the answer writer and the problem builder.
var mapperFuncs = map[string]bool{"writeError": true, "writeAnswer": true, "newProblem": true}

// parseDir parses the non-test files of dir, by path.
func parseDir(t *testing.T, fset *token.FileSet, dir string) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	return files
}

// isGinContext reports whether expr is the type *gin.Context.
func isGinContext(expr ast.Expr) bool {
	star, ok := expr.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "gin" && sel.Sel.Name == "Context"
}

// directWrites lists, as file:line: what, the places in f that write an
// answer themselves: a writing method called on a *gin.Context parameter
// or on its Writer, a call of the mapper's functions, or a Problem built.
func directWrites(fset *token.FileSet, f *ast.File) []string {
	var found []string
	report := func(n ast.Node, what string) {
		found = append(found, fset.Position(n.Pos()).String()+": "+what)
	}
	//nolint:staticcheck // the parser's own identifier resolution is enough for a source check of one file
	contexts := map[*ast.Object]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if ft, ok := n.(*ast.FuncType); ok && ft.Params != nil {
			for _, field := range ft.Params.List {
				if isGinContext(field.Type) {
					for _, name := range field.Names {
						contexts[name.Obj] = true
					}
				}
			}
		}
		return true
	})
	isContext := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		return ok && id.Obj != nil && contexts[id.Obj]
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			switch fun := n.Fun.(type) {
			case *ast.SelectorExpr:
				method := fun.Sel.Name
				switch {
				case isContext(fun.X) && ginWriters[method]:
					report(n, "c."+method)
				case mapperFuncs[method]:
					report(n, method)
				default:
					// c.Writer.Write, c.Writer.WriteHeader, ...
					if inner, ok := fun.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "Writer" && isContext(inner.X) &&
						strings.HasPrefix(method, "Write") {
						report(n, "c.Writer."+method)
					}
				}
			case *ast.Ident:
				if mapperFuncs[fun.Name] {
					report(n, fun.Name)
				}
			}
		case *ast.CompositeLit:
			if id, ok := n.Type.(*ast.Ident); ok && id.Name == "Problem" {
				report(n, "Problem{...}")
			}
		}
		return true
	})
	return found
}

// TestOnlyTheMapperWritesAnswers holds the rule that handlers return their
// answer or their error and mount writes it: outside endpoint.go and
// problem.go nothing in the package writes to a gin context, calls the
// error writer or builds a problem.
func TestOnlyTheMapperWritesAnswers(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files := parseDir(t, fset, ".")
	for _, name := range writerFiles {
		if files[name] == nil {
			t.Fatalf("%s is missing: the writers moved, update writerFiles", name)
		}
	}
	for name, f := range files {
		if slices.Contains(writerFiles, name) {
			continue
		}
		for _, w := range directWrites(fset, f) {
			t.Errorf("%s: handlers return answers and errors; only %s write them", w, strings.Join(writerFiles, " and "))
		}
	}
}

// TestDirectWritesAreFound feeds the check code that writes errors itself,
// each way it could, so it can't pass by finding nothing.
func TestDirectWritesAreFound(t *testing.T) {
	t.Parallel()
	src := `package httpapi
func (s *Server) bad(c *gin.Context) {
	s.writeError(c, err)
	c.JSON(500, nil)
	c.AbortWithStatusJSON(409, Problem{Code: "conflict"})
	c.Writer.WriteHeader(400)
	c.Status(404)
}
func (s *Server) good(ctx *gin.Context) (*answer, error) {
	w := ctx.Writer.Status()
	return jsonAnswer(200, w), nil
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "bad.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := directWrites(fset, f)
	want := []string{"writeError", "c.JSON", "c.AbortWithStatusJSON", "Problem{...}", "c.Writer.WriteHeader", "c.Status"}
	if len(got) != len(want) {
		t.Fatalf("found %q, want the %d writes %q", got, len(want), want)
	}
	for i, w := range want {
		if !strings.HasSuffix(got[i], ": "+w) {
			t.Errorf("write %d: found %q, want %q", i, got[i], w)
		}
	}
}

// mountedHandler ends the name of every handler mount returns (the
// compiler prefixes it with the caller mount was inlined into).
const mountedHandler = ".(*Server).mount.func1"

// TestEveryRouteIsMounted checks that every registered route ends in a
// handler adapted by mount, the one writer of answers and errors.
func TestEveryRouteIsMounted(t *testing.T) {
	t.Parallel()
	srv := New(Deps{Logger: quietLogger})
	if name := runtime.FuncForPC(reflect.ValueOf(srv.mount(nil)).Pointer()).Name(); !strings.HasSuffix(name, mountedHandler) {
		t.Fatalf("mount returns %s, which doesn't end in %s", name, mountedHandler)
	}
	routes := srv.routes()
	if len(routes) < 40 {
		t.Fatalf("%d routes: the admin endpoints should be registered too", len(routes))
	}
	for _, r := range routes {
		if !strings.HasSuffix(r.Handler, mountedHandler) {
			t.Errorf("%s %s is handled by %s, not through mount", r.Method, r.Path, r.Handler)
		}
	}
}

// TestNoErrorCodeIsSpelledOut holds that every error code is a declared
// constant: no error is built with a literal code, and no declared code is
// matched by its spelling (a switch case or a comparison), in this package,
// domain, or the postgres adapter that mints codes too.
func TestNoErrorCodeIsSpelledOut(t *testing.T) {
	t.Parallel()
	codes := map[string]bool{}
	var suspects []codeSuspect
	fset := token.NewFileSet()
	for _, dir := range []string{".", "../../domain", "../postgres"} {
		for _, f := range parseDir(t, fset, dir) {
			for _, value := range declaredCodes(f) {
				codes[value] = true
			}
			suspects = append(suspects, codeLiterals(fset, f)...)
		}
	}
	for _, want := range []domain.ErrorCode{domain.CodeIdempotencyMismatch, domain.CodeInvalid, codeNotAcceptable, codeMethodNotAllowed} {
		if !codes[string(want)] {
			t.Fatalf("the declaration of %q was not found; found %v", want, codes)
		}
	}
	for _, s := range suspects {
		if s.always || codes[s.value] {
			t.Errorf("%s: %q spells out an error code; use its constant", s.pos, s.value)
		}
	}
}

// TestSpelledOutCodesAreFound feeds the check each way of spelling a code.
func TestSpelledOutCodesAreFound(t *testing.T) {
	t.Parallel()
	src := `package httpapi
const codeX ErrorCode = "x_code"
var e = &domain.Error{Code: "made_up"}
var f = domain.ErrorCode("made_up_too")
func g(c domain.ErrorCode, pg string) int {
	switch c {
	case "x_code":
		return 1
	}
	if c == "x_code" || pg == "57P01" {
		return 2
	}
	return map[string]int{"unavailable": 3}["x_code"]
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "spelled.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := declaredCodes(f); !slices.Equal(got, []string{"x_code"}) {
		t.Errorf("declared %q, want [x_code]", got)
	}
	var got []string
	for _, s := range codeLiterals(fset, f) {
		got = append(got, s.value+"/"+strconv.FormatBool(s.always))
	}
	want := []string{"made_up/true", "made_up_too/true", "x_code/false", "x_code/false", "57P01/false"}
	if !slices.Equal(got, want) {
		t.Errorf("found %q, want %q", got, want)
	}
}

// codeSuspect is a string literal where a code could be spelled out.
type codeSuspect struct {
	pos, value string
	// always is a literal given as a code (Code: "...", ErrorCode("...")),
	// wrong whatever it says; otherwise it is compared, wrong when it
	// spells a declared code.
	always bool
}

// declaredCodes are the values of the ErrorCode constants f declares.
func declaredCodes(f *ast.File) []string {
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if spec, ok := n.(*ast.ValueSpec); ok && isErrorCodeType(spec.Type) {
			for _, v := range spec.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					value, _ := strconv.Unquote(lit.Value)
					out = append(out, value)
				}
			}
		}
		return true
	})
	return out
}

// codeLiterals finds the string literals of f given as an error code or
// compared: a Code field, a conversion to ErrorCode, a switch case, an
// operand of == or !=.
func codeLiterals(fset *token.FileSet, f *ast.File) []codeSuspect {
	var out []codeSuspect
	add := func(e ast.Expr, always bool) {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			value, _ := strconv.Unquote(lit.Value)
			out = append(out, codeSuspect{pos: fset.Position(lit.Pos()).String(), value: value, always: always})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.KeyValueExpr:
			if key, ok := n.Key.(*ast.Ident); ok && key.Name == "Code" {
				add(n.Value, true)
			}
		case *ast.CallExpr:
			if isErrorCodeType(n.Fun) && len(n.Args) == 1 {
				add(n.Args[0], true)
			}
		case *ast.CaseClause:
			for _, e := range n.List {
				add(e, false)
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				add(n.X, false)
				add(n.Y, false)
			}
		}
		return true
	})
	return out
}

// isErrorCodeType reports whether expr names the ErrorCode type, in
// domain or through the domain package.
func isErrorCodeType(expr ast.Expr) bool {
	switch e := expr.(type) {
	case *ast.Ident:
		return e.Name == "ErrorCode"
	case *ast.SelectorExpr:
		return e.Sel.Name == "ErrorCode"
	}
	return false
}

// TestFramingErrorsAreProblems drives the errors the router and the
// negotiation raise themselves through the one mapper: each is a problem
// with its code and status.
func TestFramingErrorsAreProblems(t *testing.T) {
	t.Parallel()
	srv := New(Deps{Logger: quietLogger})
	for _, tt := range []struct {
		name, method, target string
		status               int
		code                 domain.ErrorCode
	}{
		{"NoSuchEndpoint", http.MethodGet, "/nowhere", http.StatusNotFound, domain.CodeNotFound},
		{"MethodNotAllowed", http.MethodDelete, "/healthz", http.StatusMethodNotAllowed, codeMethodNotAllowed},
		{"Unauthenticated", http.MethodGet, "/api/messages", http.StatusUnauthorized, domain.CodeUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := serve(t, srv, tt.method, tt.target, http.Header{"X-Request-Id": {"req-1"}})
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			want := Problem{Type: problemTypeBase + string(tt.code), Title: http.StatusText(tt.status), Status: tt.status,
				Detail: p.Detail, Instance: tt.target, Code: string(tt.code), RequestID: "req-1"}
			if p != want || p.Detail == "" {
				t.Errorf("problem %+v, want %+v with a detail", p, want)
			}
		})
	}
}

// TestAnswers writes each kind of answer through mount, and a negotiated
// answer to a client that refuses both formats.
func TestAnswers(t *testing.T) {
	t.Parallel()
	srv := New(Deps{Logger: quietLogger})
	xmlBody := func() ([]byte, error) { return []byte("<ok/>"), nil }
	for _, tt := range []struct {
		name        string
		answer      *answer
		accept      string
		status      int
		contentType string
		body        string
	}{
		{"JSON", jsonAnswer(http.StatusCreated, gin.H{"a": "<b>"}), "", http.StatusCreated, "application/json; charset=utf-8", `{"a":"<b>"}`},
		{"NegotiatedJSON", negotiatedAnswer(http.StatusOK, gin.H{"a": 1}, xmlBody), "application/json", http.StatusOK, "application/json; charset=utf-8", `{"a":1}`},
		{"NegotiatedXML", negotiatedAnswer(http.StatusOK, gin.H{"a": 1}, xmlBody), "text/xml", http.StatusOK, "text/xml; charset=utf-8", "<ok/>"},
		{"NotAcceptable", negotiatedAnswer(http.StatusOK, gin.H{"a": 1}, xmlBody), "application/json;q=0, application/xml;q=0", http.StatusNotAcceptable, "application/problem+json", ""},
		{"RawEmpty", rawAnswer(http.StatusOK, "application/octet-stream", []byte{}), "", http.StatusOK, "application/octet-stream", ""},
		{"Empty", emptyAnswer(http.StatusNoContent), "", http.StatusNoContent, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := gin.New()
			e.GET("/x", srv.mount(func(*gin.Context) (*answer, error) { return tt.answer.with("X-Test", "yes"), nil }))
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.status || rec.Header().Get("Content-Type") != tt.contentType || rec.Header().Get("X-Test") != "yes" {
				t.Fatalf("got %d %q X-Test=%q, want %d %q X-Test=yes", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("X-Test"), tt.status, tt.contentType)
			}
			if tt.status == http.StatusNotAcceptable {
				if !strings.Contains(rec.Body.String(), string(codeNotAcceptable)) {
					t.Errorf("body %s, want the not_acceptable problem", rec.Body)
				}
				return
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
		})
	}
}

// TestDocumentedCodesAreDeclared compares the codes the OpenAPI document
// lists for Problem.code with the ErrorCode constants of domain and this
// package, and the status its Problem details section gives each code
// ("- `invalid` (400): ...") with the one statusFor maps it to.
func TestDocumentedCodesAreDeclared(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	statuses := 0
	for _, line := range strings.Split(doc.Info.Description, "\n") {
		code, rest, ok := strings.Cut(strings.TrimPrefix(line, "- `"), "` (")
		status, _, closed := strings.Cut(rest, "):")
		if !strings.HasPrefix(line, "- `") || !ok || !closed || len(status) != 3 {
			continue
		}
		if got := strconv.Itoa(statusFor(domain.ErrorCode(code))); got != status {
			t.Errorf("the document answers %s with %s, statusFor with %s", code, status, got)
		}
		statuses++
	}
	schema := doc.Components.Schemas["Problem"].Value.Properties["code"].Value
	var documented []string
	for _, v := range schema.Enum {
		documented = append(documented, v.(string))
	}
	fset := token.NewFileSet()
	var declared []string
	for _, dir := range []string{".", "../../domain"} {
		for _, f := range parseDir(t, fset, dir) {
			declared = append(declared, declaredCodes(f)...)
		}
	}
	if statuses != len(declared) {
		t.Errorf("the document gives the status of %d codes, the code declares %d", statuses, len(declared))
	}
	slices.Sort(documented)
	slices.Sort(declared)
	if !slices.Equal(documented, declared) {
		t.Errorf("the document lists the codes %q, the code declares %q", documented, declared)
	}
}
