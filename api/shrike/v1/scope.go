package shrikev1

import (
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The bearer-token scopes of api/README.md, the values of the required_scope
// method option.
const (
	ScopeRulesRead   = "rules:read"
	ScopeRulesWrite  = "rules:write"
	ScopeAlertsRead  = "alerts:read"
	ScopeEventsWrite = "events:write"
)

// RequiredScope returns the scope a call of the gRPC method needs, from the
// method's required_scope option; fullMethod is the form interceptors see,
// "/shrike.v1.RulesetService/PutRuleset". It returns "" for a method outside
// this package or without the option, which an auth interceptor must treat
// as "deny" for a shrike.v1 method rather than as "no scope needed".
func RequiredScope(fullMethod string) string {
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", "."))
	if !name.IsValid() {
		return ""
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return ""
	}
	m, ok := d.(protoreflect.MethodDescriptor)
	if !ok || m.ParentFile().Package() != File_shrike_v1_auth_proto.Package() {
		return ""
	}
	scope, _ := proto.GetExtension(m.Options(), E_RequiredScope).(string)
	return scope
}
