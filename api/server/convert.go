package server

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// alertConversions counts alertProto's conversions, so that tests can
// tell that an alert fanned out to many subscribers is converted once.
var alertConversions atomic.Int64

// converted is a feed alert's API form, or why it has none; shared by
// every subscriber (feed.Alert.Shared).
type converted struct {
	pa  *shrikev1.Alert
	err error
}

// feedAlertProto converts a feed alert for one subscriber: the conversion
// (the events' JSON into structpb values, the costly part) is made once
// per alert for all subscribers and kept with the alert; each subscriber
// gets a shallow copy with its own position. The shared parts are only
// read (marshalled) from then on.
func feedAlertProto(fa feed.Alert) (*shrikev1.Alert, error) {
	c := fa.Shared(func() any {
		pa, err := alertProto(fa.Alert, "")
		return converted{pa, err}
	}).(converted)
	if c.err != nil {
		return nil, c.err
	}
	out := &shrikev1.Alert{}
	dst := out.ProtoReflect()
	c.pa.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	out.Position = fa.Cursor
	return out, nil
}

// alertProto converts an alert; position is its place in the alerts
// stream ("" outside it). The matched events are the records' original
// JSON objects.
func alertProto(a *matcher.Alert, position string) (*shrikev1.Alert, error) {
	alertConversions.Add(1)
	out := &shrikev1.Alert{
		Id:          a.ID,
		Ruleset:     a.Ruleset,
		Rule:        a.Rule,
		RuleVersion: a.RuleVersion,
		Severity:    string(a.Severity),
		Key:         a.Key,
		Summary:     a.Summary,
		Labels:      a.Labels,
		Start:       timestamp(a.Start),
		End:         timestamp(a.End),
		DetectedAt:  timestamp(a.DetectedAt),
		Timeout:     a.Timeout,
		Position:    position,
		Truncated:   a.Truncated,
	}
	if a.Shadow {
		out.Shadow = proto.Bool(true)
	}
	if len(a.Measures) > 0 {
		out.Measures = measuresProto(a.Measures)
		out.Window = &shrikev1.AlertWindow{Start: timestamp(a.WindowStart), End: timestamp(a.WindowEnd)}
	}
	if len(a.Steps) > 0 {
		out.Events = make(map[string]*structpb.ListValue, len(a.Steps))
	}
	for _, s := range a.Steps {
		lv := &structpb.ListValue{Values: make([]*structpb.Value, len(s.Records))}
		for i, r := range s.Records {
			v := &structpb.Value{}
			if err := protojson.Unmarshal(matcher.AppendEventJSON(nil, r.Event.Raw()), v); err != nil {
				return nil, fmt.Errorf("alert %s: step %s: event %d: %w", a.ID, s.Step, i, err)
			}
			lv.Values[i] = v
		}
		out.Events[s.Step] = lv
	}
	return out, nil
}

// measuresProto converts an aggregate alert's measures; a measure with no
// value is null.
func measuresProto(ms []matcher.Measure) *structpb.Struct {
	st := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(ms))}
	for _, m := range ms {
		v := structpb.NewNullValue()
		if !m.None && !math.IsNaN(m.Value) && !math.IsInf(m.Value, 0) {
			v = structpb.NewNumberValue(m.Value)
		}
		st.Fields[m.Name] = v
	}
	return st
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// summary is what a ruleset version says beyond its source: description,
// topic and rules. It is derived by compiling the source, which rule
// versions need, and cached per name and version, which never change.
type summary struct {
	description, topic string
	rules              []*shrikev1.Rule
}

// summaries caches summary by name and version.
type summaries struct {
	opts rules.CompileOptions

	mu sync.Mutex
	m  map[string]*summary
}

// maxSummaries bounds the cache; past it the cache starts over, which
// costs a compile per ruleset shown.
const maxSummaries = 4096

func (c *summaries) get(rec registry.RulesetRecord) *summary {
	key := fmt.Sprintf("%s@%d", rec.Name, rec.Version)
	c.mu.Lock()
	s := c.m[key]
	c.mu.Unlock()
	if s != nil {
		return s
	}
	s = summarize(rec.Name+".yaml", rec.Source, c.opts)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSummaries {
		c.m = make(map[string]*summary)
	}
	c.m[key] = s
	c.mu.Unlock()
	return s
}

// summarize compiles src for its summary. A stored source that no longer
// compiles (the limits changed since) is still summarised from its parse,
// without rule versions.
func summarize(file string, src []byte, opts rules.CompileOptions) *summary {
	if c, err := rules.Load(file, src, opts); err == nil {
		return summaryOf(c.Ruleset, c.Rules)
	}
	if rs, err := rules.Parse(file, src); err == nil {
		return summaryOf(rs, nil)
	}
	return &summary{}
}

// summaryOf lists every rule of rs, enabled or not, with the versions of
// the compiled (enabled) ones.
func summaryOf(rs *rules.Ruleset, compiled []*rules.CompiledRule) *summary {
	versions := make(map[string]string, len(compiled))
	for _, cr := range compiled {
		versions[cr.ID] = cr.Version
	}
	s := &summary{description: rs.Description, topic: rs.Stream.Topic}
	for _, r := range rs.Rules {
		pr := &shrikev1.Rule{
			Id:          r.ID,
			Description: r.Description,
			Severity:    string(r.Severity),
			Enabled:     r.Enabled,
			Version:     versions[r.ID],
		}
		for _, st := range r.Pattern {
			pr.Steps = append(pr.Steps, st.Name)
		}
		s.rules = append(s.rules, pr)
	}
	return s
}

func (c *summaries) rulesetProto(rec registry.RulesetRecord) *shrikev1.Ruleset {
	s := c.get(rec)
	return &shrikev1.Ruleset{
		Name:        rec.Name,
		Source:      string(rec.Source),
		Version:     rec.Version,
		CreateTime:  timestamp(rec.CreateTime),
		UpdateTime:  timestamp(rec.UpdateTime),
		Description: s.description,
		Topic:       s.topic,
		Rules:       s.rules,
	}
}

func versionProto(rec registry.RulesetRecord) *shrikev1.RulesetVersion {
	return &shrikev1.RulesetVersion{
		Name:       rec.Name,
		Version:    rec.Version,
		Source:     string(rec.Source),
		CreateTime: timestamp(rec.UpdateTime),
		RollbackOf: rec.RollbackOf,
		Deleted:    rec.Deleted,
	}
}

// rulesetErrors converts a ruleset's errors for ValidateRuleset.
func rulesetErrors(list rules.ErrorList) []*shrikev1.RulesetError {
	out := make([]*shrikev1.RulesetError, len(list))
	for i, e := range list {
		out[i] = &shrikev1.RulesetError{
			Line:    int32(e.Pos.Line),
			Column:  int32(e.Pos.Col),
			Rule:    e.Rule,
			Message: e.Msg,
			Snippet: e.Snippet,
		}
	}
	return out
}
