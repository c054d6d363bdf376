package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment variable that sets a
// configuration field: SHRIKE_ and the field's dotted path in upper case
// with '_' for '.', so kafka.brokers is SHRIKE_KAFKA_BROKERS.
const EnvPrefix = "SHRIKE_"

// EnvVar is one configuration field as an environment variable, as
// EnvVars lists them.
type EnvVar struct {
	// Name is the variable's name; a field of an item of a list of
	// mappings has <N> for the item's index (SHRIKE_API_TOKENS_<N>_NAME).
	Name string
	// Field is the dotted path of the field; [N] stands for the index.
	Field string
	// Type is the Go type of the field.
	Type reflect.Type
	// Secret fields (redis.password, api.tokens[N].token) are never taken
	// from the environment: their _FILE sibling is.
	Secret bool
}

// EnvVars returns the variable of every field of Config in the order of
// the configuration file, generated from the yaml tags: each field of a
// new section gets its variable without more code.
func EnvVars() []EnvVar {
	var out []EnvVar
	walkFields(reflect.TypeFor[Config](), "", EnvPrefix, func(v EnvVar) { out = append(out, v) })
	return out
}

// walkFields calls leaf for every scalar or list-of-scalars field under
// t, a struct at path whose variables start with prefix.
func walkFields(t reflect.Type, path, prefix string, leaf func(EnvVar)) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		p, env := joinPath(path, name), prefix+strings.ToUpper(name)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			walkFields(f.Type, p, env+"_", leaf)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			walkFields(f.Type.Elem(), p+"[N]", env+"_<N>_", leaf)
		default:
			leaf(EnvVar{Name: env, Field: p, Type: f.Type, Secret: f.Tag.Get("secret") == "true"})
		}
	}
}

// ApplyEnv sets the fields named by the SHRIKE_* variables of environ
// (KEY=VALUE strings, as os.Environ returns them) over what the file said;
// flags (Set) then win over them. Values are read as flags are: lists
// comma-separated, durations in Go's syntax. An empty variable counts as
// unset, as a compose file's ${VAR} of an unset VAR gives one.
//
// A list of mappings (api.tokens) is set item by item:
// SHRIKE_API_TOKENS_0_NAME sets api.tokens[0].name, over the file's item 0
// when the file has one; indexes past the file's items append items and
// must leave no gap.
//
// Errors name the variable: a value that does not parse, a secret (its
// _FILE variable is the way), and a variable that looks like
// configuration but names no field (SHRIKE_ and a section of the file, or
// a near miss of a variable's name), so that a typo is not silent.
// Other SHRIKE_* variables (SHRIKE_SERVER of the API client, those
// Kubernetes derives from Services named shrike or shrike-redis) are left
// alone.
func (c *Config) ApplyEnv(environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) && v != "" {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	all := EnvVars()
	byName := map[string]EnvVar{}
	for _, v := range all {
		byName[v.Name] = v
	}
	var errs Errors
	fail := func(name, field, format string, args ...any) {
		errs = append(errs, &Error{Env: name, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range vars {
			if !yield(k) {
				return
			}
		}
	})
	lists := map[string]*envList{} // by the list's path
	for _, name := range names {
		value := vars[name]
		if v, ok := byName[name]; ok {
			c.setEnv(v, v.Field, name, value, fail)
			continue
		}
		if v, idx, ok := matchIndexed(all, name); ok {
			listPath, _, _ := strings.Cut(v.Field, "[N]")
			l := lists[listPath]
			if l == nil {
				l = &envList{path: listPath, items: map[int][]envItem{}}
				lists[listPath] = l
			}
			l.items[idx] = append(l.items[idx], envItem{v: v, name: name, value: value})
			continue
		}
		if looksLikeConfig(name, all) {
			msg := "is not a configuration variable"
			if near := nearest(name, all); near != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", near)
			}
			fail(name, "", "%s; docs/configuration.md lists them", msg)
		}
	}
	for _, path := range slices.Sorted(func(yield func(string) bool) {
		for k := range lists {
			if !yield(k) {
				return
			}
		}
	}) {
		c.applyEnvList(lists[path], fail)
	}
	return errs.err()
}

// envItem is one variable of an item of a list of mappings.
type envItem struct {
	v           EnvVar
	name, value string
}

// envList is the variables of one list of mappings, by item index.
type envList struct {
	path  string
	items map[int][]envItem
}

// applyEnvList grows the list at l.path to hold every index given, and
// sets the fields of its items.
func (c *Config) applyEnvList(l *envList, fail func(name, field, format string, args ...any)) {
	list := c.fieldByPath(l.path)
	indexes := slices.Sorted(func(yield func(int) bool) {
		for i := range l.items {
			if !yield(i) {
				return
			}
		}
	})
	n := list.Len()
	for _, i := range indexes {
		if i > n {
			first := l.items[i][0]
			fail(first.name, fmt.Sprintf("%s[%d]", l.path, i), "index %d leaves %s[%d] unset (%s has %d items): number the items from 0 without gaps",
				i, l.path, n, l.path, n)
			return
		}
		if i == n {
			list.Set(reflect.Append(list, reflect.Zero(list.Type().Elem())))
			n++
		}
		for _, it := range l.items[i] {
			field := strings.Replace(it.v.Field, "[N]", fmt.Sprintf("[%d]", i), 1)
			c.setEnv(it.v, field, it.name, it.value, fail)
		}
	}
}

// setEnv sets field (v's, with its index when in a list) to value from
// the variable name.
func (c *Config) setEnv(v EnvVar, field, name, value string, fail func(name, field, format string, args ...any)) {
	if v.Secret {
		fileVar := name + "_FILE"
		fail(name, field, "a secret is never read from the environment: write it to a file and set %s", fileVar)
		return
	}
	fv := c.fieldByPath(field)
	if fv.Kind() == reflect.Slice {
		setStrings(fv, splitList(value))
	} else if err := setScalar(fv, value, ""); err != nil {
		fail(name, field, "%v", err)
		return
	}
	c.setOrigin(field, origin{env: name})
}

// fieldByPath returns the field at a dotted path whose list items are
// written name[i].
func (c *Config) fieldByPath(path string) reflect.Value {
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(path, ".") {
		name, idx, indexed := strings.Cut(part, "[")
		v = v.Field(structFields(v.Type())[name])
		if indexed {
			i, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			v = v.Index(i)
		}
	}
	return v
}

// matchIndexed finds the field of a list item that name sets
// (SHRIKE_API_TOKENS_2_NAME) and its index.
func matchIndexed(all []EnvVar, name string) (EnvVar, int, bool) {
	for _, v := range all {
		head, tail, ok := strings.Cut(v.Name, "<N>")
		if !ok || !strings.HasPrefix(name, head) || !strings.HasSuffix(name, tail) || len(name) <= len(head)+len(tail) {
			continue
		}
		digits := name[len(head) : len(name)-len(tail)]
		i, err := strconv.Atoi(digits)
		if err != nil || i < 0 || strconv.Itoa(i) != digits || i > maxEnvListIndex {
			continue
		}
		return v, i, true
	}
	return EnvVar{}, 0, false
}

// maxEnvListIndex bounds an item index from the environment, so that a
// stray SHRIKE_API_TOKENS_99999999_NAME cannot make a huge list.
const maxEnvListIndex = 999

// serviceLinkRE matches the variables Kubernetes gives a pod for every
// Service of its namespace (enableServiceLinks): a Service named
// shrike-redis gives SHRIKE_REDIS_SERVICE_HOST, SHRIKE_REDIS_PORT,
// SHRIKE_REDIS_PORT_6379_TCP_ADDR and the like, which are not
// configuration.
var serviceLinkRE = regexp.MustCompile(`_SERVICE_HOST$|_SERVICE_PORT(_[A-Z0-9_]+)?$|_PORT$|_PORT_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?$`)

// looksLikeConfig reports whether name is meant as a configuration
// variable: a near miss of a variable's name, or SHRIKE_ and a section of
// the file (SHRIKE_KAFKA_...) unless it is a Kubernetes service link.
func looksLikeConfig(name string, all []EnvVar) bool {
	if nearest(name, all) != "" {
		return true
	}
	if serviceLinkRE.MatchString(name) {
		return false
	}
	rest := strings.TrimPrefix(name, EnvPrefix)
	section, _, _ := strings.Cut(rest, "_")
	for _, s := range fieldNames(reflect.TypeFor[Config]()) {
		if strings.EqualFold(section, s) {
			return true
		}
	}
	return false
}

// nearest returns the variable name closest to name, if it is within two
// edits.
func nearest(name string, all []EnvVar) string {
	best, bestD := "", 3
	for _, v := range all {
		if d := editDistance(name, v.Name, bestD); d < bestD {
			best, bestD = v.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, or limit when it
// is at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}
