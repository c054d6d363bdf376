// Package pagetoken makes and reads the opaque page tokens of the API's
// listings (rulesets, ruleset versions, recent alerts). A token names the
// listing it belongs to (its kind and scope, such as the ruleset whose
// versions are listed) and where the next page starts, so that a token
// from one listing is refused by another rather than read as a position
// in it.
package pagetoken

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid matches (errors.Is) the error of every token Decode refuses:
// one that Encode did not make for the same kind and scope.
var ErrInvalid = errors.New("invalid page token")

// maxTokenBytes bounds the tokens Decode reads: a token holds a kind, a
// scope (a ruleset name, at most 256 bytes) and a position.
const maxTokenBytes = 1024

// Encode returns the token that resumes the listing of kind over scope
// after the position last.
func Encode(kind, scope, last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + scope + "\x00" + last))
}

// Decode returns the position of a token Encode made for kind and scope,
// or an error wrapping ErrInvalid.
func Decode(tok, kind, scope string) (string, error) {
	if len(tok) <= maxTokenBytes {
		if b, err := base64.RawURLEncoding.DecodeString(tok); err == nil {
			parts := strings.SplitN(string(b), "\x00", 3)
			if len(parts) == 3 && parts[0] == kind && parts[1] == scope && parts[2] != "" {
				return parts[2], nil
			}
		}
	}
	return "", Invalid(tok)
}

// Invalid is the error for tok when its listing refuses it: for Decode,
// and for a caller whose token decodes to a position the listing no
// longer has. It quotes at most the token's first 64 bytes.
func Invalid(tok string) error {
	if len(tok) > 64 {
		tok = tok[:64] + "…"
	}
	return fmt.Errorf("%w: %q", ErrInvalid, tok)
}
