package shrikev1

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Scope is a permission a bearer token grants (api/README.md): the value of
// a method's required_scope option, and what the serve configuration's
// tokens list.
type Scope string

// The scopes of api/README.md.
const (
	ScopeRulesRead   Scope = "rules:read"
	ScopeRulesWrite  Scope = "rules:write"
	ScopeAlertsRead  Scope = "alerts:read"
	ScopeEventsWrite Scope = "events:write"
	ScopeListsWrite  Scope = "lists:write"
)

// ScopeAuthenticated is the required_scope of a method any valid token
// may call, whatever scopes it grants (AuthService.GetCaller). It is not
// among Scopes: no token grants it.
const ScopeAuthenticated Scope = "authenticated"

// Scopes returns every scope, in api/README.md's order.
func Scopes() []Scope {
	return []Scope{ScopeRulesRead, ScopeRulesWrite, ScopeAlertsRead, ScopeEventsWrite, ScopeListsWrite}
}

// Known reports whether s is one of Scopes.
func (s Scope) Known() bool { return slices.Contains(Scopes(), s) }

// ScopeList joins scopes with ", ", for messages such as "(known: …)".
func ScopeList(scopes []Scope) string {
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// RequiredScope returns the scope a call of the gRPC method needs, from the
// method's required_scope option; fullMethod is the form interceptors see,
// "/shrike.v1.RulesetService/PutRuleset". It returns "" for a method outside
// this package or without the option, which an auth interceptor must treat
// as "deny" for a shrike.v1 method rather than as "no scope needed".
func RequiredScope(fullMethod string) Scope {
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
	return Scope(scope)
}
