package shrikev1_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// apiFiles are the files of package shrike.v1; a new proto file must be
// added here so that the checks below cover it.
var apiFiles = []protoreflect.FileDescriptor{
	shrikev1.File_shrike_v1_alerts_proto,
	shrikev1.File_shrike_v1_auth_proto,
	shrikev1.File_shrike_v1_events_proto,
	shrikev1.File_shrike_v1_rulesets_proto,
	shrikev1.File_shrike_v1_lists_proto,
	shrikev1.File_shrike_v1_recordings_proto,
}

func forEachMessage(msgs protoreflect.MessageDescriptors, f func(protoreflect.MessageDescriptor)) {
	for i := range msgs.Len() {
		m := msgs.Get(i)
		if m.IsMapEntry() {
			continue
		}
		f(m)
		forEachMessage(m.Messages(), f)
	}
}

// TestJSONNamesAreProtoNames guards the promise that the API's JSON (REST,
// protojson) uses snake_case proto names, as the alert JSON of docs/design.md#alerts
// does, whatever the client's or gateway's UseProtoNames setting: a field
// added without json_name would come out in lowerCamelCase.
func TestJSONNamesAreProtoNames(t *testing.T) {
	var checked int
	for _, f := range apiFiles {
		forEachMessage(f.Messages(), func(m protoreflect.MessageDescriptor) {
			fields := m.Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				checked++
				if got, want := fd.JSONName(), string(fd.Name()); got != want {
					t.Errorf("%s: JSON name %q, want %q (add [json_name = %q])", fd.FullName(), got, want, want)
				}
			}
		})
	}
	if checked == 0 {
		t.Fatal("no fields checked")
	}
}

// route is one RPC's REST mapping and scope, as api/README.md
// states them.
type route struct {
	Method, Path, Body string
	Scope              shrikev1.Scope
}

// wantRoutes is the REST mapping of api/README.md, verbatim, plus scopes.
var wantRoutes = map[string]route{
	"shrike.v1.RulesetService.PutRuleset":          {"PUT", "/v1/rulesets/{name}", "*", shrikev1.ScopeRulesWrite},
	"shrike.v1.RulesetService.GetRuleset":          {"GET", "/v1/rulesets/{name}", "", shrikev1.ScopeRulesRead},
	"shrike.v1.RulesetService.ListRulesets":        {"GET", "/v1/rulesets", "", shrikev1.ScopeRulesRead},
	"shrike.v1.RulesetService.DeleteRuleset":       {"DELETE", "/v1/rulesets/{name}", "", shrikev1.ScopeRulesWrite},
	"shrike.v1.RulesetService.ListRulesetVersions": {"GET", "/v1/rulesets/{name}/versions", "", shrikev1.ScopeRulesRead},
	"shrike.v1.RulesetService.RollbackRuleset":     {"POST", "/v1/rulesets/{name}:rollback", "*", shrikev1.ScopeRulesWrite},
	"shrike.v1.RulesetService.ValidateRuleset":     {"POST", "/v1/rulesets:validate", "*", shrikev1.ScopeRulesRead},
	"shrike.v1.RulesetService.TestRuleset":         {"POST", "/v1/rulesets:test", "*", shrikev1.ScopeRulesRead},
	"shrike.v1.RulesetService.GetRulesetStats":     {"GET", "/v1/rulesets/{name}/stats", "", shrikev1.ScopeRulesRead},
	"shrike.v1.AlertService.SubscribeAlerts":       {"GET", "/v1/alerts:subscribe", "", shrikev1.ScopeAlertsRead},
	"shrike.v1.AlertService.ListAlerts":            {"GET", "/v1/alerts", "", shrikev1.ScopeAlertsRead},
	"shrike.v1.EventService.PublishEvents":         {"POST", "/v1/events:publish", "*", shrikev1.ScopeEventsWrite},
	"shrike.v1.ListService.PutList":                {"PUT", "/v1/lists/{name}", "*", shrikev1.ScopeListsWrite},
	"shrike.v1.ListService.AddListItems":           {"POST", "/v1/lists/{name}:add", "*", shrikev1.ScopeListsWrite},
	"shrike.v1.ListService.RemoveListItems":        {"POST", "/v1/lists/{name}:remove", "*", shrikev1.ScopeListsWrite},
	"shrike.v1.ListService.GetList":                {"GET", "/v1/lists/{name}", "", shrikev1.ScopeRulesRead},
	"shrike.v1.ListService.ListLists":              {"GET", "/v1/lists", "", shrikev1.ScopeRulesRead},
	"shrike.v1.RecordingService.ListRecordings":    {"GET", "/v1/recordings", "", shrikev1.ScopeRulesRead},
	"shrike.v1.AuthService.GetCaller":              {"GET", "/v1/caller", "", shrikev1.ScopeAuthenticated},
}

// routes reads every RPC's http rule and scope from the descriptors.
func routes(t *testing.T) map[string]route {
	t.Helper()
	got := map[string]route{}
	for _, f := range apiFiles {
		svcs := f.Services()
		for i := range svcs.Len() {
			methods := svcs.Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				var r route
				switch p := rule.GetPattern().(type) {
				case *annotations.HttpRule_Get:
					r.Method, r.Path = "GET", p.Get
				case *annotations.HttpRule_Put:
					r.Method, r.Path = "PUT", p.Put
				case *annotations.HttpRule_Post:
					r.Method, r.Path = "POST", p.Post
				case *annotations.HttpRule_Delete:
					r.Method, r.Path = "DELETE", p.Delete
				case *annotations.HttpRule_Patch:
					r.Method, r.Path = "PATCH", p.Patch
				}
				r.Body = rule.GetBody()
				scope, _ := proto.GetExtension(m.Options(), shrikev1.E_RequiredScope).(string)
				r.Scope = shrikev1.Scope(scope)
				got[string(m.FullName())] = r
			}
		}
	}
	return got
}

func TestRoutesAndScopes(t *testing.T) {
	if diff := cmp.Diff(wantRoutes, routes(t)); diff != "" {
		t.Errorf("RPC routes (-want +got):\n%s", diff)
	}
}

func TestRequiredScope(t *testing.T) {
	tests := []struct {
		fullMethod string
		want       shrikev1.Scope
	}{
		{shrikev1.RulesetService_PutRuleset_FullMethodName, shrikev1.ScopeRulesWrite},
		{shrikev1.RulesetService_TestRuleset_FullMethodName, shrikev1.ScopeRulesRead},
		{shrikev1.AlertService_SubscribeAlerts_FullMethodName, shrikev1.ScopeAlertsRead},
		{shrikev1.EventService_PublishEvents_FullMethodName, shrikev1.ScopeEventsWrite},
		{"/shrike.v1.RulesetService/NoSuchMethod", ""},
		{"/shrike.v1.Alert/id", ""},                   // a field, not a method
		{"/grpc.health.v1.Health/Check", ""},          // not ours
		{"/grpc.reflection.v1.ServerReflection/", ""}, // not a valid name
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.fullMethod, func(t *testing.T) {
			if got := shrikev1.RequiredScope(tt.fullMethod); got != tt.want {
				t.Errorf("RequiredScope(%q) = %q, want %q", tt.fullMethod, got, tt.want)
			}
		})
	}
	// Every method of every service descriptor answers through the same
	// path the interceptor uses.
	for name, r := range wantRoutes {
		i := strings.LastIndex(name, ".")
		full := "/" + name[:i] + "/" + name[i+1:]
		if got := shrikev1.RequiredScope(full); got != r.Scope {
			t.Errorf("RequiredScope(%q) = %q, want %q", full, got, r.Scope)
		}
	}
}
