package api

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// readmeRow matches a row of README.md's REST mapping table:
// | `Service.Method` | `VERB /path` | body | `scope` |, the scope
// "authenticated" for a method any valid token may call.
var readmeRow = regexp.MustCompile("^\\| `(\\w+\\.\\w+)` \\| `([A-Z]+ [^`]+)` \\|[^|]*\\| `([a-z]+:[a-z]+|authenticated)` \\|$")

// mapping is one RPC's route and scope: "GET /v1/alerts alerts:read".
type mapping map[string]string

func readmeMapping(t *testing.T) mapping {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := mapping{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if g := readmeRow.FindStringSubmatch(line); g != nil {
			m[g[1]] = g[2] + " " + g[3]
		}
	}
	return m
}

func protoMapping() mapping {
	m := mapping{}
	for _, f := range []protoreflect.FileDescriptor{
		shrikev1.File_shrike_v1_alerts_proto,
		shrikev1.File_shrike_v1_analysis_proto,
		shrikev1.File_shrike_v1_events_proto,
		shrikev1.File_shrike_v1_rulesets_proto,
		shrikev1.File_shrike_v1_shadow_proto,
		shrikev1.File_shrike_v1_lists_proto,
		shrikev1.File_shrike_v1_recordings_proto,
		shrikev1.File_shrike_v1_auth_proto,
	} {
		svcs := f.Services()
		for i := range svcs.Len() {
			methods := svcs.Get(i).Methods()
			for j := range methods.Len() {
				md := methods.Get(j)
				rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				var route string
				switch p := rule.GetPattern().(type) {
				case *annotations.HttpRule_Get:
					route = "GET " + p.Get
				case *annotations.HttpRule_Put:
					route = "PUT " + p.Put
				case *annotations.HttpRule_Post:
					route = "POST " + p.Post
				case *annotations.HttpRule_Delete:
					route = "DELETE " + p.Delete
				case *annotations.HttpRule_Patch:
					route = "PATCH " + p.Patch
				}
				scope, _ := proto.GetExtension(md.Options(), shrikev1.E_RequiredScope).(string)
				m[string(svcs.Get(i).Name())+"."+string(md.Name())] = route + " " + scope
			}
		}
	}
	return m
}

// TestREADMEMapping keeps README.md's REST mapping table, which users read,
// equal to the protos, which the gateway and the auth interceptor read.
func TestREADMEMapping(t *testing.T) {
	want := protoMapping()
	if len(want) == 0 {
		t.Fatal("no RPCs in the descriptors")
	}
	if diff := cmp.Diff(want, readmeMapping(t)); diff != "" {
		t.Errorf("README.md REST mapping (-protos +README):\n%s", diff)
	}
}
