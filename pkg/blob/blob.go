package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotFound is returned (wrapped) by Open for a key that holds no blob.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned (wrapped) for a key or prefix that breaks the
// key rules of [Store]; the error names the rule and the key's length,
// never its content.
var ErrInvalidKey = errors.New("blob: invalid key")

// MaxKeyLen is the longest key, in bytes.
const MaxKeyLen = 512

// Store holds blobs by key. Keys are slash-separated relative paths of
// segments made of [A-Za-z0-9._-] (no empty segment, no "." or ".."
// segment), at most [MaxKeyLen] bytes; a bad key is an error
// ([ErrInvalidKey]) that names the rule, never the key's content beyond its
// length. Implementations are safe for concurrent use.
type Store interface {
	// Put stores everything read from r under key, replacing any blob
	// there; it streams (bounded memory whatever the size) and returns the
	// number of bytes stored. A Put that fails or is cancelled leaves no
	// blob (and no partial blob) under key: the key is as it was before.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open streams the blob under key. ErrNotFound if none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// DeletePrefix deletes every blob whose key starts with prefix, which
	// must be a folder: a valid key followed by "/" (e.g. "req-123/"). It
	// returns how many blobs it deleted; deleting nothing is not an error.
	DeletePrefix(ctx context.Context, prefix string) (int, error)
}

// CheckKey reports whether key is a valid blob key, with an error wrapping
// [ErrInvalidKey] that names the broken rule if it is not.
func CheckKey(key string) error {
	if rule := keyRule(key); rule != "" {
		return fmt.Errorf("%w (%d bytes): %s", ErrInvalidKey, len(key), rule)
	}
	return nil
}

// checkPrefix checks a DeletePrefix argument: a valid key and a slash.
func checkPrefix(prefix string) error {
	rule := ""
	if !strings.HasSuffix(prefix, "/") {
		rule = `a prefix is a folder: a key followed by "/"`
	} else {
		rule = keyRule(prefix[:len(prefix)-1])
	}
	if rule != "" {
		return fmt.Errorf("%w: prefix (%d bytes): %s", ErrInvalidKey, len(prefix), rule)
	}
	return nil
}

// keyRule returns the rule key breaks, or "" if it is valid. The rules are
// written out so that no message can quote any part of the key.
func keyRule(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case key[0] == '/':
		return "absolute (starts with /)"
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return "empty segment (// or a trailing /)"
		case ".", "..":
			return `segment "." or ".."`
		}
		for i := 0; i < len(seg); i++ {
			if !keyByte(seg[i]) {
				return "character outside [A-Za-z0-9._-]"
			}
		}
	}
	return ""
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// ctxReader fails a read once ctx is done, so that a Put or an Open whose
// context is cancelled stops at its next read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// readFull reads into p until it is full, the reader ends (eof is true,
// err nil) or a read fails (err, which may be io.ErrUnexpectedEOF from a
// source cut short: that is an error, not an end).
func readFull(r io.Reader, p []byte) (n int, eof bool, err error) {
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}
