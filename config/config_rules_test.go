package config

import (
	"strings"
	"testing"
)

// TestRulesMaxVersions: the history bound defaults to 100 and is at least
// 2, reported at its position.
func TestRulesMaxVersions(t *testing.T) {
	if c := DefaultConfig(); c.Rules.MaxVersions != DefaultMaxVersions || DefaultMaxVersions != 100 {
		t.Errorf("default rules.max_versions %d", c.Rules.MaxVersions)
	}
	c, err := LoadConfig("c.yaml", []byte("rules: {max_versions: 7}\n"))
	if err == nil {
		err = c.Validate()
	}
	if err != nil || c.Rules.MaxVersions != 7 {
		t.Errorf("max_versions 7: %d, %v", c.Rules.MaxVersions, err)
	}
	c, err = LoadConfig("c.yaml", []byte("rules:\n  max_versions: 1\n"))
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2:17: rules.max_versions: must be at least 2") {
		t.Errorf("max_versions 1: %v, want an error at its position", err)
	}
}
