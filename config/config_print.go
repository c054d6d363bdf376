package config

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/rules"
)

// Redacted stands for a secret's value in PrintYAML's output.
const Redacted = "<redacted>"

// PrintYAML returns the configuration as a YAML file that serve would run
// the same from: every field, with a comment saying where each value that
// is not a default came from (a file position, a variable, a flag).
// Secrets held in the configuration itself (redis.password,
// api.tokens[].token) are printed as <redacted>, and of a webhook's URL
// only the scheme and host; the paths of secret files are printed, never
// what the files hold.
func (c *Config) PrintYAML() ([]byte, error) {
	root := c.printNode(reflect.ValueOf(c).Elem(), "")
	var buf bytes.Buffer
	buf.WriteString("# shrike serve's effective configuration: defaults, then the file, then SHRIKE_* variables, then flags.\n")
	buf.WriteString("# Secrets are " + Redacted + "; a secret file's path is shown, never its contents.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("print config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("print config: %w", err)
	}
	return buf.Bytes(), nil
}

// redactURL keeps a URL's scheme and host and redacts the rest: a
// webhook's path or query may be its secret (Slack's are).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Redacted
	}
	if u.Path == "" && u.RawQuery == "" && u.User == nil {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/" + Redacted
}

// printNode turns v, the field at path, into a YAML node.
func (c *Config) printNode(v reflect.Value, path string) *yaml.Node {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		n := &yaml.Node{Kind: yaml.MappingNode}
		for i := range t.NumField() {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			p := joinPath(path, name)
			val := c.printNode(v.Field(i), p)
			switch tag := t.Field(i).Tag.Get("secret"); {
			case tag == "true" && v.Field(i).String() != "":
				val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
			case tag == "url" && v.Field(i).String() != "":
				val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: redactURL(v.Field(i).String())}
			}
			if o, ok := c.origin[p]; ok && (val.Kind == yaml.ScalarNode || val.Style == yaml.FlowStyle) {
				val.LineComment = "# " + o.String()
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, val)
		}
		return n
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			n.Content = append(n.Content, c.printNode(v.Index(i), fmt.Sprintf("%s[%d]", path, i)))
		}
		return n
	case t.Kind() == reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.Index(i).String()})
		}
		return n
	case t.Kind() == reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.String()},
				c.printNode(v.MapIndex(k), path+"."+k.String()))
		}
		return n
	case t == durationType:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: rules.FormatDuration(time.Duration(v.Int()))}
	case t.Kind() == reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case t.Kind() == reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.String()}
}
