package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// generatedGlobs are the files generate.sh writes, relative to its output
// folder.
var generatedGlobs = []string{
	"shrike/v1/*.pb.go", // also *_grpc.pb.go
	"shrike/v1/*.pb.gw.go",
	"openapi/*.swagger.json",
}

func generatedFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, g := range generatedGlobs {
		matches, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			rel, err := filepath.Rel(dir, m)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.ToSlash(rel)] = b
		}
	}
	return files
}

// protocVersionRE matches the header lines in which protoc-gen-go and
// protoc-gen-go-grpc record protoc's version: a developer's protoc may differ
// from CI's (Debian's 3.21.12) without the code differing.
var protocVersionRE = regexp.MustCompile(`(?m)^//\s+(-\s+)?protoc\s+\S.*$`)

func normalize(b []byte) []byte {
	return protocVersionRE.ReplaceAll(b, []byte("// protoc VERSION"))
}

// TestGeneratedUpToDate regenerates everything from the protos into a
// temporary folder with generate.sh (the plugin versions pinned in go.mod)
// and fails if the committed files differ. With buf on PATH, generate.sh
// also lints the protos, and a lint error fails the test.
func TestGeneratedUpToDate(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("protoc not found: CI must install it (Debian: apt-get install -y protobuf-compiler)")
		}
		t.Skip("protoc not found (Debian: apt-get install -y protobuf-compiler): the generated code is not checked")
	}
	if testing.Short() {
		t.Skip("-short: regenerating builds the protoc plugins")
	}
	if _, err := exec.LookPath("buf"); err != nil && os.Getenv("BUF") == "" {
		t.Log("buf not found: the protos are not linted (npm install @bufbuild/buf@1.75.0, see README.md)")
	}

	out := t.TempDir()
	cmd := exec.Command("bash", "generate.sh", out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, stderr.String())
	}

	committed, fresh := generatedFiles(t, "."), generatedFiles(t, out)
	if len(fresh) == 0 {
		t.Fatal("generate.sh wrote no files")
	}
	names := func(m map[string][]byte) []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
	}
	if diff := cmp.Diff(names(fresh), names(committed)); diff != "" {
		t.Errorf("generated files (-generated +committed), run api/generate.sh:\n%s", diff)
	}
	for name, want := range fresh {
		got, ok := committed[name]
		if !ok {
			continue
		}
		if diff := cmp.Diff(strings.Split(string(normalize(want)), "\n"), strings.Split(string(normalize(got)), "\n")); diff != "" {
			t.Errorf("%s is stale (-generated +committed), run api/generate.sh:\n%s", name, diff)
		}
	}
}

// protoIncludes are generate.sh's -I folders, relative to api/: every
// import of the API's protos must resolve in them, so that generating needs
// protoc alone and no include files of the machine's (Debian's
// protobuf-compiler without libprotobuf-dev has no google/protobuf/*.proto).
var protoIncludes = []string{".", "../third_party/googleapis", "../third_party/protobuf"}

var protoImportRE = regexp.MustCompile(`(?m)^import\s+(?:public\s+|weak\s+)?"([^"]+)";`)

// TestProtoImportsVendored follows the imports of api/shrike/v1/*.proto,
// transitively, and fails on any that no folder of protoIncludes holds. It
// needs no protoc, so it guards a fresh machine even where the machine it
// runs on has the well-known protos installed.
func TestProtoImportsVendored(t *testing.T) {
	script, err := os.ReadFile("generate.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, inc := range protoIncludes[1:] {
		if !bytes.Contains(script, []byte("-I "+inc)) {
			t.Errorf("generate.sh does not pass -I %s", inc)
		}
	}
	roots, err := filepath.Glob("shrike/v1/*.proto")
	if err != nil || len(roots) == 0 {
		t.Fatalf("no protos under shrike/v1 (%v)", err)
	}
	resolve := func(name string) (string, bool) {
		for _, inc := range protoIncludes {
			p := filepath.Join(inc, filepath.FromSlash(name))
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
		return "", false
	}
	seen := map[string]bool{}
	queue := roots
	for len(queue) > 0 {
		file := queue[0]
		queue = queue[1:]
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range protoImportRE.FindAllSubmatch(src, -1) {
			name := string(m[1])
			if seen[name] {
				continue
			}
			seen[name] = true
			p, ok := resolve(name)
			if !ok {
				t.Errorf("%s imports %q, which no folder of generate.sh's includes (%s) holds: vendor it under third_party/", file, name, strings.Join(protoIncludes, ", "))
				continue
			}
			queue = append(queue, p)
		}
	}
	for _, wkt := range []string{"google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto"} {
		if !seen[wkt] {
			t.Errorf("the import walk never reached %s: the walk is broken", wkt)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"protoc-gen-go", "// \tprotoc-gen-go v1.36.12\n// \tprotoc        v3.21.12\n", "// \tprotoc-gen-go v1.36.12\n// protoc VERSION\n"},
		{"protoc-gen-go-grpc", "// - protoc-gen-go-grpc v1.6.2\n// - protoc             v5.29.3\n", "// - protoc-gen-go-grpc v1.6.2\n// protoc VERSION\n"},
		{"unknown version", "// \tprotoc        (unknown)\n", "// protoc VERSION\n"},
		{"code is kept", "x := protoc  v3\n// protocol v2\n", "x := protoc  v3\n// protocol v2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(normalize([]byte(tt.in))); got != tt.want {
				t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
