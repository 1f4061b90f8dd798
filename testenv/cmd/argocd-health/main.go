// Command argocd-health evaluates an Argo CD health check (a health.lua) the way Argo CD does, so that
// q-operator's generated checks are proven on the Lua VM that runs them in production rather than
// only on the Lua inside lupa.
//
// The VM is github.com/yuin/gopher-lua at the version Argo CD pins (go.mod), set up as Argo CD's
// util/lua sets it up: a fresh state per object, the object as the global `obj`, a one-second
// deadline, and the script's returned table read as {status, message}. Which libraries are open
// depends on where Argo CD found the script:
//
//   - a check from the argocd-cm ConfigMap (the default, `-open-libs=false`): only the package, base
//     and table libraries, plus a safe `os` with time and date that only `require("os")` reaches
//     (Argo CD's opener for it registers nothing global). No string, math, io or global os.
//   - a built-in check under Argo CD's resource_customizations/, or an argocd-cm check with
//     `resource.customizations.useOpenLibs.<group>_<kind>: "true"` (`-open-libs`): every gopher-lua
//     library, then package, base and table opened again.
//
// Usage:
//
//	argocd-health [-open-libs] SCRIPT [OBJECT ...]
//	    Evaluate SCRIPT on each OBJECT file (JSON or YAML, one object each) or, with no OBJECT, on
//	    every JSON value read from stdin. Prints one JSON line per object, in order:
//	    {"status": ..., "message": ...} or {"error": ...}.
//	argocd-health -test DIR
//	    Run every case of every health_test.yaml under DIR (Argo CD's resource_customizations
//	    layout) as Argo CD's own test does: open libraries, status and message must match exactly.
//	    Prints one JSON line per case and exits 1 if any case fails.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
	"sigs.k8s.io/yaml"
)

// deadline is how long Argo CD lets one health check run.
const deadline = time.Second

// validStatuses are the verdicts Argo CD accepts from a script; anything else reads as Unknown.
var validStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// Verdict is what Argo CD shows for a resource: the health status and the message beside it.
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type output struct {
	Status  *string `json:"status,omitempty"`
	Message *string `json:"message,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func main() {
	openLibs := flag.Bool("open-libs", false, "open every standard library, as Argo CD does for built-in checks")
	testDir := flag.String("test", "", "run every health_test.yaml under this directory")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: argocd-health [-open-libs] SCRIPT [OBJECT ...] | argocd-health -test DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *testDir != "" {
		if flag.NArg() != 0 {
			flag.Usage()
			os.Exit(2)
		}
		os.Exit(runTests(*testDir, os.Stdout))
	}
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := evaluateAll(flag.Arg(0), flag.Args()[1:], *openLibs, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(2)
	}
}

// evaluateAll compiles the script once and runs it on every object, one fresh VM each.
func evaluateAll(scriptPath string, objectPaths []string, openLibs bool, stdin io.Reader, out io.Writer) error {
	proto, err := compileFile(scriptPath)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	emit := func(v Verdict, err error) error {
		if err != nil {
			return enc.Encode(output{Error: err.Error()})
		}
		return enc.Encode(output{Status: &v.Status, Message: &v.Message})
	}
	if len(objectPaths) > 0 {
		for _, path := range objectPaths {
			obj, err := readObject(path)
			if err != nil {
				return err
			}
			if err := emit(evaluate(proto, obj, openLibs)); err != nil {
				return err
			}
		}
		return nil
	}
	dec := json.NewDecoder(stdin)
	for {
		var obj any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("stdin: %w", err)
		}
		if err := emit(evaluate(proto, obj, openLibs)); err != nil {
			return err
		}
	}
}

func compileFile(path string) (*lua.FunctionProto, error) {
	source, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	chunk, err := parse.Parse(bytes.NewReader(source), path)
	if err != nil {
		return nil, err
	}
	return lua.Compile(chunk, path)
}

// readObject reads one object from a JSON or YAML file. YAML goes through JSON, as Argo CD's own
// test reads its testdata, so numbers arrive as float64 either way.
func readObject(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

// newState builds the VM with the libraries Argo CD opens for a health check (see the package doc).
func newState(openLibs bool) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	return l
}

// evaluate runs one compiled check on one object and reads its verdict as Argo CD does.
func evaluate(proto *lua.FunctionProto, obj any, openLibs bool) (Verdict, error) {
	l := newState(openLibs)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	l.Push(l.NewFunctionFromProto(proto))
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) {
			return Verdict{}, errors.New(apiErr.Object.String())
		}
		return Verdict{}, err
	}
	return readVerdict(l.Get(-1))
}

// toLua converts a decoded JSON value as Argo CD does: objects and arrays become tables (arrays
// 1-based), and nulls vanish (a nil table entry is no entry).
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	default:
		return lua.LNil
	}
}

// readVerdict reads what the script returned. Argo CD encodes the returned table to JSON and decodes
// it into {status, message}; this follows the outcomes of that round trip: nothing, an empty table, a
// list or a field that is not a string give an empty verdict, a status outside the known ones reads
// as Unknown, and anything but a table or nil is an error.
func readVerdict(value lua.LValue) (Verdict, error) {
	switch v := value.(type) {
	case *lua.LNilType:
		return Verdict{}, nil
	case *lua.LTable:
		if first, _ := v.Next(lua.LNil); first == lua.LNil || v.Len() > 0 {
			return Verdict{}, nil
		}
		var verdict Verdict
		for key, dest := range map[string]*string{"status": &verdict.Status, "message": &verdict.Message} {
			switch field := v.RawGetString(key).(type) {
			case *lua.LNilType:
			case lua.LString:
				*dest = string(field)
			default:
				return Verdict{}, nil
			}
		}
		if !validStatuses[verdict.Status] {
			return Verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
		}
		return verdict, nil
	default:
		return Verdict{}, fmt.Errorf("expect table output from Lua script, not %s", value.Type())
	}
}

// safeOs is the part of the os library Argo CD lets scripts require: reading the clock only.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		if l.GetTop() == 0 {
			l.Push(lua.LNumber(time.Now().Unix()))
			return 1
		}
		t := l.CheckTable(1)
		field := func(name string, fallback int) int {
			if n, ok := t.RawGetString(name).(lua.LNumber); ok {
				return int(n)
			}
			return fallback
		}
		when := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
			field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
		l.Push(lua.LNumber(when.Unix()))
		return 1
	},
	"date": func(l *lua.LState) int {
		format := l.OptString(1, "%c")
		when := time.Now()
		if l.GetTop() >= 2 {
			when = time.Unix(l.CheckInt64(2), 0)
		}
		if rest, utc := strings.CutPrefix(format, "!"); utc {
			format, when = rest, when.UTC()
		}
		if strings.HasPrefix(format, "*t") {
			t := l.NewTable()
			for name, n := range map[string]int{
				"year": when.Year(), "month": int(when.Month()), "day": when.Day(), "hour": when.Hour(),
				"min": when.Minute(), "sec": when.Second(), "wday": int(when.Weekday()) + 1,
				"yday": when.YearDay(),
			} {
				t.RawSetString(name, lua.LNumber(n))
			}
			t.RawSetString("isdst", lua.LFalse)
			l.Push(t)
			return 1
		}
		l.Push(lua.LString(strftime(when, format)))
		return 1
	},
}

// strftime formats the C conversions health checks use; others are copied through.
func strftime(t time.Time, format string) string {
	layouts := map[byte]string{
		'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'H': "15", 'I': "03", 'M': "04", 'S': "05",
		'p': "PM", 'b': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'Z': "MST", 'z': "-0700",
		'F': "2006-01-02", 'T': "15:04:05", 'c': "Mon Jan  2 15:04:05 2006",
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		if layout, ok := layouts[format[i]]; ok {
			b.WriteString(t.Format(layout))
		} else if format[i] == '%' {
			b.WriteByte('%')
		} else {
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// testFile is Argo CD's health_test.yaml: cases of an input object and the verdict it must get.
type testFile struct {
	Tests []struct {
		InputPath    string  `json:"inputPath"`
		HealthStatus Verdict `json:"healthStatus"`
	} `json:"tests"`
}

type caseResult struct {
	Case  string   `json:"case"`
	OK    bool     `json:"ok"`
	Want  Verdict  `json:"want"`
	Got   *Verdict `json:"got,omitempty"`
	Error string   `json:"error,omitempty"`
}

// runTests runs every health_test.yaml case beside every health.lua under root, with open libraries
// as Argo CD runs its built-in checks, and returns the exit code.
func runTests(root string, out io.Writer) int {
	var scripts []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "health.lua" {
			scripts = append(scripts, path)
		}
		return err
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		return 2
	}
	sort.Strings(scripts)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	cases, failed := 0, 0
	report := func(r caseResult) {
		cases++
		if !r.OK {
			failed++
		}
		_ = enc.Encode(r)
	}
	for _, script := range scripts {
		dir := filepath.Dir(script)
		rel, _ := filepath.Rel(root, dir)
		proto, err := compileFile(script)
		if err != nil {
			report(caseResult{Case: rel, Error: err.Error()})
			continue
		}
		var spec testFile
		data, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err == nil {
			err = yaml.UnmarshalStrict(data, &spec)
		}
		if err == nil && len(spec.Tests) == 0 {
			err = errors.New("health_test.yaml has no tests")
		}
		if err != nil {
			report(caseResult{Case: filepath.Join(rel, "health_test.yaml"), Error: err.Error()})
			continue
		}
		for _, test := range spec.Tests {
			result := caseResult{Case: filepath.Join(rel, test.InputPath), Want: test.HealthStatus}
			obj, err := readObject(filepath.Join(dir, test.InputPath))
			if err == nil {
				var got Verdict
				got, err = evaluate(proto, obj, true)
				result.Got = &got
				result.OK = err == nil && got == test.HealthStatus
			}
			if err != nil {
				result.Error = err.Error()
			}
			report(result)
		}
	}
	fmt.Fprintf(os.Stderr, "argocd-health: %d cases, %d failed, %d health.lua under %s\n",
		cases, failed, len(scripts), root)
	if failed > 0 || len(scripts) == 0 {
		return 1
	}
	return 0
}
