package dlms

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Key is one meter's secret: the encryption key (the GUEK, which the grid
// operator gives the customer) and, optionally, the authentication key. Its
// fields are unexported and it formats as "dlms.Key(redacted)" with every
// fmt verb, so a key cannot end up in a log line or an error by accident.
type Key struct {
	enc     [16]byte
	auth    [16]byte
	hasAuth bool
}

// SmartyAuthKey is the authentication key that the Luxembourg Smarty P1
// specification publishes for every Smarty meter. It is used to check the
// tag of a frame when the gateway has no authentication key of its own (see
// the package documentation); it is public, not a secret.
var SmartyAuthKey = [16]byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF}

// ErrKeyForm is wrapped by ParseKey's errors.
var ErrKeyForm = errors.New("not a key")

// ParseKey returns the Key with encryption key enc and authentication key
// auth (empty: none), each 32 hexadecimal digits. Its errors say which of the
// two is wrong and how, and never quote either.
func ParseKey(enc, auth string) (Key, error) {
	var k Key
	if err := parseHex(k.enc[:], enc); err != nil {
		return Key{}, fmt.Errorf("%w: the key %v", ErrKeyForm, err)
	}
	if auth != "" {
		if err := parseHex(k.auth[:], auth); err != nil {
			return Key{}, fmt.Errorf("%w: the authentication key %v", ErrKeyForm, err)
		}
		k.hasAuth = true
	}
	return k, nil
}

// NewKey returns the Key with encryption key enc and, when auth is not nil,
// authentication key *auth.
func NewKey(enc [16]byte, auth *[16]byte) Key {
	k := Key{enc: enc}
	if auth != nil {
		k.auth, k.hasAuth = *auth, true
	}
	return k
}

func parseHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("has %d characters; want %d hexadecimal digits", len(s), 2*len(dst))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("has a character that is not a hexadecimal digit at position %d; want %d hexadecimal digits", i+1, 2*len(dst))
		}
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}

// HasAuth reports whether k carries its own authentication key.
func (k Key) HasAuth() bool { return k.hasAuth }

// String returns "dlms.Key(redacted)", never the key.
func (k Key) String() string { return "dlms.Key(redacted)" }

// GoString returns the same as String, so that %#v does not print the key.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb (%x and %d included, which would
// otherwise print the key's bytes).
func (k Key) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(k.String())) }
