#!/usr/bin/env python3
"""A second verifier of Lethe's certificates of fulfilment, written from docs/spec.

It reads certificates of version 1 (a signed tree head) and version 2 (a C2SP
tlog-checkpoint signed note, optionally cosigned by witnesses), with the Python
standard library and the `cryptography` package (Ed25519) only: Debian's
python3-cryptography is enough.

    python3 lethe_verify.py CERT.json --keys KEYS.json [--witness VKEY ...] [--witness-quorum N]
    python3 lethe_verify.py --vectors docs/spec/vectors [--json]

Exit codes: 0 verified (every vector as expected), 1 not verified (a vector not
as expected), 2 the inputs could not be read and nothing was checked.

Every check cites the section of the specification it implements
(verification.md step N, or the document that defines the rule). Each problem
found is reported with a code of this verifier's own (CERT_SIGNATURE, ...) and
a message worded as the specification gives the Go verifier's.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # pragma: no cover - reported by main()
    Ed25519PublicKey = None
    InvalidSignature = Exception

try:
    import zoneinfo
except ImportError:  # pragma: no cover - Python < 3.9
    zoneinfo = None


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------

class Problem(object):
    """One problem found: a code of this verifier's own, and the message the
    specification gives for it (the Go verifier's words)."""

    def __init__(self, code, message):
        self.code = code
        self.message = message

    def __repr__(self):
        return "[%s] %s" % (self.code, self.message)


class Fatal(Exception):
    """A problem of step 1 of verification.md: it ends verification."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.problem = Problem(code, message)


class BadInput(Exception):
    """An input that could not be read: nothing was checked (exit code 2)."""


class LookupProblem(Exception):
    """A failed key look-up or signature check (keys.md): code and message."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------
# Go's ways of writing values in messages (verification.md, "Notation")
# ---------------------------------------------------------------------------

def go_quote(s):
    """Go's %q of a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif ch.isprintable() and not (0xD800 <= o <= 0xDFFF):
            out.append(ch)
        elif ch == '\a':
            out.append('\\a')
        elif ch == '\b':
            out.append('\\b')
        elif ch == '\f':
            out.append('\\f')
        elif ch == '\n':
            out.append('\\n')
        elif ch == '\r':
            out.append('\\r')
        elif ch == '\t':
            out.append('\\t')
        elif ch == '\v':
            out.append('\\v')
        elif o < 0x20 or o == 0x7f:
            out.append('\\x%02x' % o)
        elif o < 0x10000:
            out.append('\\u%04x' % o)
        else:
            out.append('\\U%08x' % o)
    out.append('"')
    return ''.join(out)


def go_list(items):
    """Go's %v of a list of strings: [a b], [] when empty."""
    return '[' + ' '.join(items or []) + ']'


# ---------------------------------------------------------------------------
# Times (canonical-json.md, "Times"): instants at nanosecond precision, with
# the offset they were written with. No datetime: years 0 to 9999 all work.
# ---------------------------------------------------------------------------

def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (m <= 2), m, d)


def days_in_month(y, m):
    if m == 12:
        return 31
    return days_from_civil(y, m + 1, 1) - days_from_civil(y, m, 1)


class Time(object):
    """An instant (sec: Unix seconds, nsec) and the offset it is shown in."""

    __slots__ = ('sec', 'nsec', 'off')

    def __init__(self, sec, nsec=0, off=0):
        sec += nsec // 1000000000
        nsec %= 1000000000
        self.sec, self.nsec, self.off = sec, nsec, off

    def key(self):
        return (self.sec, self.nsec)

    def __eq__(self, o):
        return isinstance(o, Time) and self.key() == o.key()

    def __ne__(self, o):
        return not self.__eq__(o)

    def __lt__(self, o):
        return self.key() < o.key()

    def __le__(self, o):
        return self.key() <= o.key()

    def __gt__(self, o):
        return self.key() > o.key()

    def __ge__(self, o):
        return self.key() >= o.key()

    def __hash__(self):
        return hash(self.key())

    def utc(self):
        return Time(self.sec, self.nsec, 0)

    def wall(self):
        local = self.sec + self.off
        days, rem = divmod(local, 86400)
        y, m, d = civil_from_days(days)
        return y, m, d, rem // 3600, rem % 3600 // 60, rem % 60

    def _format(self, nano):
        y, m, d, h, mi, s = self.wall()
        out = '%04d-%02d-%02dT%02d:%02d:%02d' % (y, m, d, h, mi, s)
        if nano and self.nsec:
            out += '.' + ('%09d' % self.nsec).rstrip('0')
        if self.off == 0:
            return out + 'Z'
        minutes = abs(self.off) // 60  # Go writes hours and minutes only
        return out + '%s%02d:%02d' % ('-' if self.off < 0 else '+', minutes // 60, minutes % 60)

    def rfc3339nano(self):
        """Go's Format(time.RFC3339Nano), in the time's own offset."""
        return self._format(True)

    def stamp(self):
        """Go's Format(time.RFC3339): whole seconds, the fraction dropped."""
        return self._format(False)

    def year(self):
        return self.wall()[0]


EPOCH = Time(0)
# Go's zero time, 0001-01-01T00:00:00Z (time.Time.IsZero).
GO_ZERO_TIME = Time(days_from_civil(1, 1, 1) * 86400)

TIME_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$')


def parse_time(s):
    """An RFC 3339 time as canonical-json.md allows it; None if it is not one.
    (Whether it is written canonically is left to the re-encoding.)"""
    m = TIME_RE.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7)
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo) and h < 24 and mi < 60 and se < 60):
        return None
    off = 0
    if not m.group(8):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh >= 24 or om >= 60:
            return None
        off = (oh * 3600 + om * 60) * (-1 if m.group(9) == '-' else 1)
    nsec = int(frac.ljust(9, '0')) if frac else 0
    sec = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off
    return Time(sec, nsec, off)


# ---------------------------------------------------------------------------
# Base64 (canonical-json.md, "Byte strings")
# ---------------------------------------------------------------------------

B64_RE = re.compile(r'^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$')


def b64decode_lenient(s):
    """Standard base64, padded, as Go's base64.StdEncoding decodes it: the
    unused low bits of the last character may be anything. None if invalid."""
    if not B64_RE.match(s):
        return None
    return base64.b64decode(s)


def b64encode(b):
    return base64.b64encode(b).decode('ascii')


def b64decode_strict(s):
    """Canonical base64 only: what decodes and encodes back to itself."""
    b = b64decode_lenient(s)
    if b is None or b64encode(b) != s:
        return None
    return b


# ---------------------------------------------------------------------------
# JSON: a strict parser that keeps each value's raw text (canonical-json.md,
# "Raw values"), and the typed model of certificate.md and log.md.
# ---------------------------------------------------------------------------

class Node(object):
    __slots__ = ('kind', 'value', 'start', 'end')

    def __init__(self, kind, value, start, end):
        self.kind, self.value, self.start, self.end = kind, value, start, end


class JSONError(Exception):
    pass


_WS = ' \t\n\r'
_NUM_RE = re.compile(r'-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?')
_ESC = {'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}


class Parser(object):
    def __init__(self, text):
        self.s = text
        self.i = 0

    def ws(self):
        s, i = self.s, self.i
        while i < len(s) and s[i] in _WS:
            i += 1
        self.i = i

    def value(self):
        self.ws()
        s, i = self.s, self.i
        if i >= len(s):
            raise JSONError('unexpected end of JSON input')
        c = s[i]
        if c == '{':
            self.i += 1
            pairs = []
            self.ws()
            if self.s[self.i:self.i + 1] == '}':
                self.i += 1
                return Node('object', pairs, i, self.i)
            while True:
                self.ws()
                if self.s[self.i:self.i + 1] != '"':
                    raise JSONError("invalid character looking for beginning of object key string")
                k = self.string()
                self.ws()
                if self.s[self.i:self.i + 1] != ':':
                    raise JSONError("invalid character after object key")
                self.i += 1
                v = self.value()
                pairs.append((k.value, v))
                self.ws()
                c = self.s[self.i:self.i + 1]
                self.i += 1
                if c == '}':
                    return Node('object', pairs, i, self.i)
                if c != ',':
                    raise JSONError("invalid character after object key:value pair")
        if c == '[':
            self.i += 1
            items = []
            self.ws()
            if self.s[self.i:self.i + 1] == ']':
                self.i += 1
                return Node('array', items, i, self.i)
            while True:
                items.append(self.value())
                self.ws()
                c = self.s[self.i:self.i + 1]
                self.i += 1
                if c == ']':
                    return Node('array', items, i, self.i)
                if c != ',':
                    raise JSONError("invalid character after array element")
        if c == '"':
            return self.string()
        for lit, val in (('true', True), ('false', False), ('null', None)):
            if s.startswith(lit, i):
                self.i += len(lit)
                return Node('null' if val is None else 'bool', val, i, self.i)
        m = _NUM_RE.match(s, i)
        if m and m.end() > i:
            self.i = m.end()
            tok = m.group(0)
            return Node('number', tok, i, self.i)
        raise JSONError("invalid character %s looking for beginning of value" % go_quote(c))

    def string(self):
        s, start = self.s, self.i
        i = start + 1
        out = []
        while True:
            if i >= len(s):
                raise JSONError('unexpected end of JSON input')
            c = s[i]
            if c == '"':
                self.i = i + 1
                return Node('string', ''.join(out), start, self.i)
            if c == '\\':
                e = s[i + 1:i + 2]
                if e in _ESC:
                    out.append(_ESC[e])
                    i += 2
                elif e == 'u':
                    h = s[i + 2:i + 6]
                    if not re.match(r'^[0-9a-fA-F]{4}$', h):
                        raise JSONError('invalid character in string escape code')
                    o = int(h, 16)
                    if 0xD800 <= o <= 0xDFFF:
                        # A surrogate: never canonical (canonical-json.md, "Strings").
                        raise Fatal('CERT_NOT_CANONICAL', NOT_CANONICAL)
                    out.append(chr(o))
                    i += 6
                else:
                    raise JSONError('invalid character in string escape code')
            elif ord(c) < 0x20:
                raise JSONError('invalid character in string literal')
            else:
                out.append(c)
                i += 1


def parse_json(text):
    """One JSON value and nothing after it but white space."""
    p = Parser(text)
    v = p.value()
    p.ws()
    if p.i != len(text):
        raise JSONError('trailing data')
    return v


# Kinds of the model (Go's types): 'str', 'int', 'bool', 'time' (time.Time),
# 'ptime' (*time.Time), 'bytes' ([]byte), 'hash' (tlog.Hash), 'raw'
# (json.RawMessage), ('obj', FIELDS) (a struct), ('pobj', FIELDS) (a pointer
# to one), ('slice', kind), ('map', kind). FIELDS: (name, kind, omitempty).

ACTOR = [('kind', 'str', False), ('id', 'str', False), ('name', 'str', True), ('role', 'str', True)]
SPEC = [('time_zone', 'str', True), ('roll_to_working_day', 'bool', True), ('holidays', ('slice', 'str'), True)]
SWEEP = [('policy', 'str', False), ('clock', 'str', False), ('cutoff', 'time', False), ('dry_run', 'bool', True),
         ('systems', ('map', ('slice', 'str')), False)]
PURPOSES = [('purposes', ('slice', 'str'), False), ('systems', ('map', ('slice', 'str')), False)]
REAPPLY = [('system', 'str', False), ('since', 'time', False), ('people', 'int', False), ('hashes_sha256', 'str', False),
           ('part', 'int', True), ('parts', 'int', True)]
LIFT = [('restriction', 'str', False), ('reason', 'str', False), ('by', 'str', True)]
DECISION = [('at', 'time', False), ('actor', ('obj', ACTOR), False), ('method', 'str', True), ('ground', 'str', True),
            ('note', 'str', True)]
EXTENSION = [('at', 'time', False), ('reason', 'str', False), ('original_deadline', 'time', False),
             ('notice_delivered_at', 'ptime', True), ('notice_channels', ('slice', 'str'), True)]
SYSTEM = [('system', 'str', False), ('outcome', 'str', False), ('counts', ('map', 'int'), True), ('remaining', 'int', False),
          ('legal_basis', 'str', True), ('retain_until', 'ptime', True), ('export_sha256', 'bytes', True),
          ('connector_time', 'ptime', True), ('key_id', 'str', True), ('receipt', 'bytes', True), ('detail', 'str', True)]
TREE_HEAD = [('size', 'int', False), ('root_hash', 'hash', False), ('time', 'time', False), ('key_id', 'str', False),
             ('signature', 'bytes', False)]
LOGGED = [('index', 'int', False), ('entry', 'raw', False), ('proof', ('slice', 'hash'), False)]
LOG = [('entries', ('slice', ('obj', LOGGED)), False), ('tree_head', ('pobj', TREE_HEAD), True), ('checkpoint', 'str', True)]
CERTIFICATE = [
    ('version', 'int', False), ('request_id', 'str', False), ('tenant', 'str', False), ('type', 'str', False),
    ('subject_hash', 'str', False), ('received_at', 'time', False), ('deadline', 'time', False),
    ('deadline_policy', ('pobj', SPEC), True), ('extension', ('pobj', EXTENSION), True),
    ('verification', ('pobj', DECISION), True), ('denial', ('pobj', DECISION), True), ('answered_at', 'ptime', True),
    ('completed_at', 'time', False), ('state', 'str', False), ('deadline_met', 'bool', False),
    ('systems', ('slice', ('obj', SYSTEM)), False), ('export_manifest_sha256', 'str', True),
    ('sweep', ('pobj', SWEEP), True), ('purposes', ('pobj', PURPOSES), True), ('reapply', ('pobj', REAPPLY), True),
    ('lift', ('pobj', LIFT), True), ('log', ('obj', LOG), False), ('key_id', 'str', False), ('signature', 'bytes', False)]
ENTRY = [
    ('request_id', 'str', False), ('event', 'str', False), ('at', 'time', False), ('tenant', 'str', True),
    ('type', 'str', True), ('subject_hash', 'str', True), ('received_at', 'ptime', True), ('deadline', 'ptime', True),
    ('system', 'str', True), ('attempt', 'int', True), ('outcome', 'str', True), ('receipt_hash', 'str', True),
    ('detail', 'str', True), ('original_deadline', 'ptime', True), ('reason_sha256', 'str', True),
    ('retain_until', 'ptime', True), ('notice', 'str', True), ('channel', 'str', True),
    ('deadline_policy', ('pobj', SPEC), True), ('actor', ('pobj', ACTOR), True), ('method', 'str', True),
    ('ground', 'str', True), ('note_sha256', 'str', True), ('manifest_sha256', 'str', True),
    ('sweep', ('pobj', SWEEP), True), ('purposes', ('pobj', PURPOSES), True), ('reapply', ('pobj', REAPPLY), True),
    ('lift', ('pobj', LIFT), True)]

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
NOT_CANONICAL = 'not in canonical form: the certificate was changed after it was issued'


class ModelError(Exception):
    pass


def zero(kind):
    if kind == 'str':
        return ''
    if kind == 'int':
        return 0
    if kind == 'bool':
        return False
    if kind == 'time':
        return GO_ZERO_TIME
    if isinstance(kind, tuple) and kind[0] == 'obj':
        return dict((n, zero(k)) for n, k, _ in kind[1])
    return None


def to_model(node, kind, text):
    """A JSON value read into the model, as Go's encoding/json reads it into
    the typed structures: a value of the wrong JSON type is an error; null
    leaves a string, number, boolean, time or struct at its zero value (the
    re-encoding then differs) and makes a pointer, slice, map or byte string
    nil."""
    if node.kind == 'null':
        if kind == 'hash':
            raise ModelError('cannot decode hash')
        if kind == 'raw':
            return 'null'
        return zero(kind)
    if kind == 'raw':
        return text[node.start:node.end]
    if kind == 'str':
        if node.kind != 'string':
            raise ModelError('json: cannot unmarshal %s into a string' % node.kind)
        return node.value
    if kind == 'int':
        if node.kind != 'number' or not re.match(r'^-?(0|[1-9][0-9]*)$', node.value):
            raise ModelError('json: cannot unmarshal %s into an integer' % node.kind)
        v = int(node.value)
        if not INT64_MIN <= v <= INT64_MAX:
            raise ModelError('json: integer out of range')
        return v
    if kind == 'bool':
        if node.kind != 'bool':
            raise ModelError('json: cannot unmarshal %s into a boolean' % node.kind)
        return node.value
    if kind in ('time', 'ptime'):
        if node.kind != 'string':
            raise ModelError('json: cannot unmarshal %s into a time' % node.kind)
        t = parse_time(node.value)
        if t is None:
            raise ModelError('parsing time %s' % go_quote(node.value))
        return t
    if kind == 'bytes':
        if node.kind != 'string':
            raise ModelError('json: cannot unmarshal %s into bytes' % node.kind)
        b = b64decode_lenient(node.value)
        if b is None:
            raise ModelError('illegal base64 data')
        return b
    if kind == 'hash':
        raw = text[node.start:node.end]
        if node.kind != 'string' or len(raw) != 46 or raw[-2] != '=':
            raise ModelError('cannot decode hash')
        b = b64decode_lenient(node.value)
        if b is None or len(b) != 32:
            raise ModelError('cannot decode hash')
        return b
    tag = kind[0]
    if tag in ('obj', 'pobj'):
        if node.kind != 'object':
            raise ModelError('json: cannot unmarshal %s into an object' % node.kind)
        fields = kind[1]
        names = dict((n, k) for n, k, _ in fields)
        out = zero(('obj', fields))
        seen = set()
        for k, v in node.value:
            if k not in names:
                raise ModelError('json: unknown field %s' % go_quote(k))
            if k in seen:
                # Go keeps the last value; the re-encoding has one field
                # fewer: never canonical.
                raise Fatal('CERT_NOT_CANONICAL', NOT_CANONICAL)
            seen.add(k)
            out[k] = to_model(v, names[k], text)
        return out
    if tag == 'slice':
        if node.kind != 'array':
            raise ModelError('json: cannot unmarshal %s into an array' % node.kind)
        return [to_model(v, kind[1], text) for v in node.value]
    if tag == 'map':
        if node.kind != 'object':
            raise ModelError('json: cannot unmarshal %s into a map' % node.kind)
        out = {}
        for k, v in node.value:
            if k in out:
                raise Fatal('CERT_NOT_CANONICAL', NOT_CANONICAL)
            out[k] = to_model(v, kind[1], text)
        return out
    raise AssertionError(kind)


def enc_str(s):
    """A string as Go's encoding/json writes it (canonical-json.md, "Strings")."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == '\\':
            out.append('\\\\')
        elif o < 0x20:
            out.append({'\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t'}.get(ch, '\\u%04x' % o))
        elif ch in '<>&' or o in (0x2028, 0x2029):
            out.append('\\u%04x' % o)
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def is_empty(v, kind):
    """Go's omitempty: false, 0, "", a nil pointer, an empty slice or map."""
    if v is None:
        return True
    if kind == 'str':
        return v == ''
    if kind == 'int':
        return v == 0
    if kind == 'bool':
        return v is False
    if kind == 'bytes' or (isinstance(kind, tuple) and kind[0] in ('slice', 'map')):
        return len(v) == 0
    return False


def encode(v, kind, utc=False):
    """The canonical encoding of a model value (canonical-json.md). With utc,
    every time is written in UTC, as a log entry writes them (log.md)."""
    if kind == 'str':
        return enc_str(v)
    if kind == 'int':
        return str(v)
    if kind == 'bool':
        return 'true' if v else 'false'
    if kind in ('time', 'ptime'):
        if v is None:
            return 'null'
        return '"' + (v.utc() if utc else v).rfc3339nano() + '"'
    if kind == 'bytes':
        return 'null' if v is None else '"' + b64encode(v) + '"'
    if kind == 'hash':
        return '"' + b64encode(v) + '"'
    if kind == 'raw':
        return compact_raw(v)
    tag = kind[0]
    if tag in ('obj', 'pobj'):
        if v is None:
            return 'null'
        parts = []
        for n, k, omit in kind[1]:
            x = v[n]
            if omit and is_empty(x, k):
                continue
            parts.append(enc_str(n) + ':' + encode(x, k, utc))
        return '{' + ','.join(parts) + '}'
    if tag == 'slice':
        return 'null' if v is None else '[' + ','.join(encode(x, kind[1], utc) for x in v) + ']'
    if tag == 'map':
        if v is None:
            return 'null'
        keys = sorted(v, key=lambda k: k.encode('utf-8'))
        return '{' + ','.join(enc_str(k) + ':' + encode(v[k], kind[1], utc) for k in keys) + '}'
    raise AssertionError(kind)


def compact_raw(raw):
    """A raw JSON value as Go writes a json.RawMessage: compacted, with <, >,
    &, U+2028 and U+2029 inside strings escaped (canonical-json.md, "Raw
    values")."""
    out = []
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == '\\':
                esc = True
            elif ch == '"':
                in_str = False
            if ch in '<>&' or ord(ch) in (0x2028, 0x2029):
                out.append('\\u%04x' % ord(ch))
                continue
            out.append(ch)
        elif ch in _WS:
            continue
        else:
            if ch == '"':
                in_str = True
            out.append(ch)
    return ''.join(out)


def read_certificate(data):
    """Step 1 of verification.md: the certificate read and found canonical,
    of a version this verifier reads. Raises Fatal otherwise."""
    if data.endswith(b'\n'):
        data = data[:-1]
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        # Go replaces invalid UTF-8 with U+FFFD: never canonical.
        raise Fatal('CERT_NOT_CANONICAL', NOT_CANONICAL)
    try:
        node = parse_json(text)
        c = to_model(node, ('obj', CERTIFICATE), text)
    except (JSONError, ModelError) as e:
        raise Fatal('CERT_SYNTAX', 'not a certificate: %s' % e)
    if encode(c, ('obj', CERTIFICATE)).encode('utf-8') != data:
        raise Fatal('CERT_NOT_CANONICAL', NOT_CANONICAL)
    v = c['version']
    log = c['log']
    if v < 1 or v > 2:
        raise Fatal('CERT_VERSION', 'version %d: this verifier reads versions 1 to 2' % v)
    if v == 1 and (log['tree_head'] is None or log['checkpoint'] != ''):
        raise Fatal('CERT_LOG_FORM', 'version 1: the log is proved against a tree_head, and only that')
    if v == 2 and (log['tree_head'] is not None or log['checkpoint'] == ''):
        raise Fatal('CERT_LOG_FORM', 'version %d: the log is proved against a checkpoint, and only that' % v)
    return c


# ---------------------------------------------------------------------------
# Keys (keys.md)
# ---------------------------------------------------------------------------

def _get_ci(obj, name):
    """A field of a keys file's object, matched as Go's encoding/json matches
    names: exactly, else without regard to case."""
    if name in obj:
        return obj[name]
    for k, v in obj.items():
        if k.lower() == name:
            return v
    return None


def read_keys(data, path='keys file'):
    """A keys file, read leniently and validated (keys.md, "The keys file")."""
    try:
        doc = json.loads(data.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput('keys file %s: %s' % (path, e))
    if not isinstance(doc, dict):
        raise BadInput('keys file %s: not a JSON object' % path)
    keys = _get_ci(doc, 'keys')
    if keys is None:
        keys = []
    if not isinstance(keys, list):
        raise BadInput('keys file %s: keys is not a list' % path)
    out = []
    for k in keys:
        if not isinstance(k, dict):
            raise BadInput('keys file %s: a key is not an object' % path)
        kid = _get_ci(k, 'key_id') or ''
        pub = _get_ci(k, 'public_key') or ''
        pubb = b64decode_lenient(re.sub(r'[\r\n]', '', pub)) if isinstance(pub, str) else None
        if pubb is None:
            raise BadInput('keys file %s: key %s: illegal base64 data' % (path, go_quote(kid)))
        nb = _get_ci(k, 'not_before')
        na = _get_ci(k, 'not_after')
        nbt = parse_time(nb) if isinstance(nb, str) else (GO_ZERO_TIME if nb is None else None)
        nat = parse_time(na) if isinstance(na, str) else None
        if nbt is None or (na is not None and nat is None):
            raise BadInput('keys file %s: key %s: a time is not RFC 3339' % (path, go_quote(kid)))
        out.append({'key_id': kid, 'role': _get_ci(k, 'role') or '', 'system': _get_ci(k, 'system') or '',
                    'public_key': pubb, 'not_before': nbt, 'not_after': nat})
    seen = set()
    for k in out:  # KeySet.Validate: the first failure is reported
        q = go_quote(k['key_id'])
        if len(k['public_key']) != 32:
            raise BadInput('keys file %s: key %s: public key must be 32 bytes' % (path, q))
        if k['role'] not in ('connector', 'orchestrator'):
            raise BadInput('keys file %s: key %s: role must be "connector" or "orchestrator"' % (path, q))
        if k['role'] == 'connector' and not k['system']:
            raise BadInput('keys file %s: key %s: a connector key names its system' % (path, q))
        if k['key_id'] in seen:
            raise BadInput('keys file %s: key %s: listed twice' % (path, q))
        seen.add(k['key_id'])
        if k['not_after'] is not None and not k['not_after'] > k['not_before']:
            raise BadInput('keys file %s: key %s: not_after is not after not_before' % (path, q))
    return out


def valid_at(k, t):
    return k['not_before'] <= t and (k['not_after'] is None or t < k['not_after'])


def key_for(keys, kid, role, system, at):
    """keys.md, "Looking a key up"."""
    k = next((k for k in keys if k['key_id'] == kid), None)
    if k is None:
        raise LookupProblem('KEY_UNKNOWN', 'key not in the keys file: %s' % kid)
    if k['role'] != role or (role == 'connector' and k['system'] != system):
        raise LookupProblem('KEY_WRONG_SYSTEM', 'key not registered for this system: %s is a %s key for %s, not for %s'
                            % (kid, k['role'], go_quote(k['system']), go_quote(system)))
    if not valid_at(k, at):
        raise LookupProblem('KEY_NOT_VALID', 'key not valid at the time of signing: %s at %s' % (kid, at.utc().stamp()))
    return k


def ed25519_ok(public, message, signature):
    """Ed25519 (RFC 8032) as Go's crypto/ed25519.Verify checks it (keys.md)."""
    if len(signature) != 64 or len(public) != 32:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public)).verify(bytes(signature), bytes(message))
        return True
    except (InvalidSignature, ValueError):
        return False


def verify_domain(k, domain, msg, sig):
    """A signature in a domain (keys.md, "Signatures and domains")."""
    if not ed25519_ok(k['public_key'], b'lethe/' + domain.encode('ascii') + b'/v1\x00' + msg, sig):
        raise LookupProblem('BAD_SIGNATURE', 'signature does not verify (key %s)' % k['key_id'])


# ---------------------------------------------------------------------------
# The Merkle tree (log.md, sections 2, 3 and 5)
# ---------------------------------------------------------------------------

def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(entry):
    return sha256(b'\x00' + entry)


def node_hash(left, right):
    return sha256(b'\x01' + left + right)


def maxpow2(n):
    """The largest power of two smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ProofFailed(Exception):
    pass


def _run_record(p, lo, hi, m, leaf):
    if hi - lo == 1:
        if p:
            raise ProofFailed('invalid transparency proof')
        return leaf
    if not p:
        raise ProofFailed('invalid transparency proof')
    k = maxpow2(hi - lo)
    if m < lo + k:
        return node_hash(_run_record(p[:-1], lo, lo + k, m, leaf), p[-1])
    return node_hash(p[-1], _run_record(p[:-1], lo + k, hi, m, leaf))


def check_inclusion(proof, size, root, index, leaf):
    """log.md, section 3: raises ProofFailed with the reason."""
    if size < 0 or index < 0 or index >= size:
        raise ProofFailed('tlog: invalid inputs in CheckRecord')
    if _run_record(list(proof), 0, size, index, leaf) != root:
        raise ProofFailed('invalid transparency proof')


def _run_tree(p, lo, hi, n, old):
    if n == hi:
        if lo == 0:
            if p:
                raise ProofFailed('invalid transparency proof')
            return old, old
        if len(p) != 1:
            raise ProofFailed('invalid transparency proof')
        return p[0], p[0]
    if not p:
        raise ProofFailed('invalid transparency proof')
    k = maxpow2(hi - lo)
    if n <= lo + k:
        oh, th = _run_tree(p[:-1], lo, lo + k, n, old)
        return oh, node_hash(th, p[-1])
    oh, th = _run_tree(p[:-1], lo + k, hi, n, old)
    return node_hash(p[-1], oh), node_hash(p[-1], th)


def check_consistency(proof, size, root, old_size, old_root):
    """log.md, section 5: raises ProofFailed with the reason."""
    if old_size < 1 or old_size > size:
        raise ProofFailed('tlog: invalid inputs in CheckTree')
    oh, th = _run_tree(list(proof), 0, size, old_size, old_root)
    if oh != old_root or th != root:
        raise ProofFailed('invalid transparency proof')


# ---------------------------------------------------------------------------
# Log entries (log.md, "Canonical form")
# ---------------------------------------------------------------------------

class EntryError(Exception):
    pass


def decode_entry(raw):
    """An entry's raw bytes, read and found canonical; raises EntryError."""
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise EntryError('log entry: not in canonical form')
    try:
        node = parse_json(text)
        e = to_model(node, ('obj', ENTRY), text)
    except (JSONError, ModelError) as x:
        raise EntryError('log entry: %s' % x)
    except Fatal:
        raise EntryError('log entry: not in canonical form')
    at = e['at'].utc()  # (null reads as the zero entry, as Go reads it: not canonical)
    e2 = dict(e)
    e2['at'] = Time(at.sec, at.nsec - at.nsec % 1000000)  # truncated to the millisecond
    if encode(e2, ('obj', ENTRY), utc=True).encode('utf-8') != raw:
        raise EntryError('log entry: not in canonical form')
    return e


# ---------------------------------------------------------------------------
# Receipts: protobuf (receipts.md)
# ---------------------------------------------------------------------------

class ProtoError(Exception):
    pass


# A message's fields: number -> (name, kind, repeated). Kinds: 'string',
# 'bytes', 'int64', 'int32', 'uint32', 'enum', 'bool', or a message (dict).
TIMESTAMP = {1: ('seconds', 'int64', False), 2: ('nanos', 'int32', False)}
CATEGORY_COUNT = {1: ('category', 'string', False), 2: ('count', 'int64', False)}
EXPORT_FILE = {1: ('ref', 'string', False), 2: ('name', 'string', False), 3: ('category', 'string', False),
               4: ('content_type', 'string', False), 5: ('size', 'int64', False), 6: ('sha256', 'bytes', False)}
SWEEP_MSG = {1: ('policy', 'string', False), 2: ('categories', 'string', True), 3: ('clock', 'string', False),
             4: ('cutoff', TIMESTAMP, False), 5: ('dry_run', 'bool', False)}
RECEIPT = {
    1: ('request_id', 'string', False), 2: ('task_id', 'string', False), 3: ('system', 'string', False),
    4: ('action', 'enum', False), 5: ('outcome', 'enum', False), 6: ('counts', CATEGORY_COUNT, True),
    7: ('legal_basis', 'string', False), 8: ('retain_until', TIMESTAMP, False), 9: ('export_ref', 'string', False),
    10: ('export_sha256', 'bytes', False), 12: ('remaining', 'int64', False), 13: ('detail', 'string', False),
    14: ('retryable', 'bool', False), 15: ('connector_time', TIMESTAMP, False), 16: ('attempt', 'uint32', False),
    17: ('key_id', 'string', False), 18: ('signature', 'bytes', False), 20: ('export_files', EXPORT_FILE, True),
    21: ('export_size', 'int64', False), 22: ('sealed_export_key', 'bytes', False), 23: ('export_key', 'bytes', False),
    24: ('export_categories', 'string', True), 25: ('sweep', SWEEP_MSG, False), 26: ('categories', 'string', True),
    27: ('restriction_id', 'string', False)}


def wire_type(kind):
    return 2 if kind in ('string', 'bytes') or isinstance(kind, dict) else 0


def read_varint(b, i):
    x = shift = 0
    for n in range(10):
        if i >= len(b):
            raise ProtoError('unexpected EOF')
        c = b[i]
        i += 1
        if n == 9 and c > 1:
            raise ProtoError('variable length integer overflow')
        x |= (c & 0x7f) << shift
        shift += 7
        if c < 0x80:
            return x, i
    raise ProtoError('variable length integer overflow')


def put_varint(x):
    x &= (1 << 64) - 1
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7f | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _signed(x, bits):
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def _skip_group(b, i, num):
    while True:
        key, i = read_varint(b, i)
        n, wt = key >> 3, key & 7
        if wt == 4:
            if n != num:
                raise ProtoError('mismatching end group marker')
            return i
        i = _skip_field(b, i, n, wt)


def _skip_field(b, i, num, wt):
    if wt == 0:
        _, i = read_varint(b, i)
    elif wt == 1:
        i += 8
    elif wt == 5:
        i += 4
    elif wt == 2:
        n, i = read_varint(b, i)
        i += n
    elif wt == 3:
        i = _skip_group(b, i, num)
    else:
        raise ProtoError('cannot parse reserved wire type')
    if i > len(b):
        raise ProtoError('unexpected EOF')
    return i


def proto_parse(b, spec):
    """A message, as Go's proto.Unmarshal reads it (receipts.md, "Reading"):
    fields in any order, the last value of a scalar winning, the records of a
    message field merged, unknown fields kept in the order read."""
    msg = {'_unknown': b''}
    pending = {}
    for num, (name, kind, rep) in spec.items():
        msg[name] = [] if rep else None
    i = 0
    while i < len(b):
        start = i
        key, i = read_varint(b, i)
        num, wt = key >> 3, key & 7
        if num == 0 or num > (1 << 29) - 1:
            raise ProtoError('invalid field number')
        f = spec.get(num)
        if f is None or wire_type(f[1]) != wt:
            if wt == 4:
                raise ProtoError('unexpected end group')
            i = _skip_field(b, i, num, wt)
            msg['_unknown'] += b[start:i]
            continue
        name, kind, rep = f
        if wt == 0:
            v, i = read_varint(b, i)
            if kind == 'bool':
                v = v != 0
            elif kind == 'int64':
                v = _signed(v, 64)
            elif kind in ('int32', 'enum'):
                v = _signed(v, 32)
            elif kind == 'uint32':
                v &= 0xffffffff
        else:
            n, i = read_varint(b, i)
            if i + n > len(b):
                raise ProtoError('unexpected EOF')
            v = b[i:i + n]
            i += n
            if kind == 'string':
                try:
                    v = v.decode('utf-8')
                except UnicodeDecodeError:
                    raise ProtoError('string field contains invalid UTF-8')
            elif isinstance(kind, dict):
                if rep:
                    v = proto_parse(v, kind)
                else:
                    pending[name] = pending.get(name, b'') + v  # merged: parsed once, at the end
                    continue
        if rep:
            msg[name].append(v)
        else:
            msg[name] = v
    for num, (name, kind, rep) in spec.items():
        if name in pending:
            msg[name] = proto_parse(pending[name], kind)
    return msg


def proto_encode(msg, spec, skip=()):
    """The deterministic encoding (receipts.md, "The deterministic encoding")."""
    out = bytearray()
    for num in sorted(spec):
        name, kind, rep = spec[num]
        if name in skip:
            continue
        values = msg[name] if rep else ([] if msg[name] is None else [msg[name]])
        for v in values:
            if not rep and not isinstance(kind, dict) and v in ('', b'', 0, False):
                continue
            tag = put_varint(num << 3 | wire_type(kind))
            if kind == 'string':
                e = v.encode('utf-8')
                out += tag + put_varint(len(e)) + e
            elif kind == 'bytes':
                out += tag + put_varint(len(v)) + v
            elif kind == 'bool':
                out += tag + b'\x01'
            elif isinstance(kind, dict):
                sub = proto_encode(v, kind)
                out += tag + put_varint(len(sub)) + sub
            else:
                out += tag + put_varint(v)
    out += msg['_unknown']
    return bytes(out)


OUTCOMES = {0: 'unspecified', 1: 'erased', 2: 'exported', 3: 'not_found', 4: 'retained', 5: 'failed',
            6: 'restricted', 7: 'lifted'}
ACTIONS = {0: 'ACTION_UNSPECIFIED', 1: 'ACTION_ERASE', 2: 'ACTION_EXPORT', 3: 'ACTION_SWEEP', 4: 'ACTION_REAPPLY',
           5: 'ACTION_RESTRICT', 6: 'ACTION_LIFT'}
TYPE_ACTION = {'export': 2, 'sweep': 3, 'reapply': 4, 'restriction': 5, 'lift': 6}  # any other type: 1


def outcome_name(n):
    return OUTCOMES.get(n, str(n))


def answers(typ, outcome):
    """Which outcome answers which type (verification.md, step 8.4.9)."""
    if outcome == 'restricted':
        return typ == 'restriction'
    if outcome == 'lifted':
        return typ == 'lift'
    if outcome in ('erased', 'exported', 'retained'):
        return typ not in ('restriction', 'lift')
    return outcome in ('not_found', 'failed')


def ts_time(ts):
    """A Timestamp as an instant (an absent one is 1970-01-01T00:00:00Z)."""
    if ts is None:
        return Time(0)
    return Time(ts['seconds'] or 0, ts['nanos'] or 0)


TS_MIN, TS_MAX = -62135596800, 253402300799  # 0001-01-01 to 9999-12-31T23:59:59


def ts_valid(ts):
    s, n = ts['seconds'] or 0, ts['nanos'] or 0
    return TS_MIN <= s <= TS_MAX and 0 <= n < 1000000000


def receipt_canonical(r):
    return proto_encode(r, RECEIPT, skip=('signature', 'sealed_export_key', 'export_key'))


def receipt_hash(r):
    return hashlib.sha256(receipt_canonical(r) + (r['signature'] or b'')).hexdigest()


def system_result_of(r):
    """certificate.md, "From a receipt: SystemResultOf"."""
    res = {'system': r['system'] or '', 'outcome': outcome_name(r['outcome'] or 0), 'counts': None,
           'remaining': r['remaining'] or 0, 'legal_basis': r['legal_basis'] or '', 'retain_until': None,
           'export_sha256': r['export_sha256'] or b'', 'connector_time': None, 'key_id': r['key_id'] or '',
           'receipt': proto_encode(r, RECEIPT, skip=('sealed_export_key', 'export_key')), 'detail': ''}
    if r['counts']:
        res['counts'] = {}
        for c in r['counts']:
            res['counts'][c['category'] or ''] = c['count'] or 0
    if r['retain_until'] is not None:
        res['retain_until'] = ts_time(r['retain_until'])
    if r['connector_time'] is not None:
        res['connector_time'] = ts_time(r['connector_time'])
    return res


# ---------------------------------------------------------------------------
# Deadlines (deadlines.md, section 3)
# ---------------------------------------------------------------------------

class Zone(object):
    """A policy's time zone: the UTC offset in force at an instant."""

    def __init__(self, name):
        self.name = name
        self.tz = None if name in ('', 'UTC') else zoneinfo.ZoneInfo(name)

    def offset(self, unix):
        if self.tz is None:
            return 0
        try:
            dt = datetime.datetime.fromtimestamp(unix, self.tz)
        except (OverflowError, ValueError, OSError):
            return 0
        return int(dt.utcoffset().total_seconds())

    def civil(self, t):
        """The calendar date, in the zone, of the instant t."""
        return civil_from_days((t.sec + self.offset(t.sec)) // 86400)

    def go_date(self, y, mo, d, h, mi, s):
        """deadlines.md, GoDate (in "The last second of a day"): Go's time.Date."""
        y += (mo - 1) // 12
        mo = (mo - 1) % 12 + 1
        u = (days_from_civil(y, mo, 1) + d - 1) * 86400 + h * 3600 + mi * 60 + s
        off1 = self.offset(u)
        if off1 == 0:
            return u
        return u - self.offset(u - off1)


def add_months(day, n):
    """deadlines.md, AddMonths on calendar dates."""
    y, m, d = day
    fy, fm = y + (m - 1 + n) // 12, (m - 1 + n) % 12 + 1
    return (fy, fm, min(d, days_in_month(fy, fm)))


def add_days(day, n):
    return civil_from_days(days_from_civil(*day) + n)


class Policy(object):
    def __init__(self, zone, roll, holidays):
        self.zone, self.roll, self.holidays = zone, roll, holidays

    def working(self, day):
        weekday = (days_from_civil(*day) + 4) % 7  # 0: Sunday
        return weekday not in (0, 6) and day not in self.holidays

    def end_of(self, day):
        while self.roll and not self.working(day):
            day = add_days(day, 1)
        return self.last_second(day)

    def last_second(self, day):
        """deadlines.md, LastSecond: a binary search between two noons."""
        y, m, d = day
        lo = self.zone.go_date(y, m, d, 12, 0, 0)
        hi = self.zone.go_date(y, m, d + 1, 12, 0, 0)
        nxt = days_from_civil(*add_days(day, 1))
        while hi - lo > 1:
            mid = lo + (hi - lo) // 2
            if days_from_civil(*self.zone.civil(Time(mid))) < nxt:
                lo = mid
            else:
                hi = mid
        return Time(lo, 0, self.zone.offset(lo))

    def deadline(self, received):
        return self.end_of(add_months(self.zone.civil(received), 1))

    def extended(self, received):
        day = self.zone.civil(received)
        from_receipt = self.end_of(add_months(day, 3))
        from_deadline = self.end_of(add_months(add_months(day, 1), 2))
        return from_deadline if from_deadline < from_receipt else from_receipt


HOLIDAY_RE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})$')


def read_policy(spec):
    """deadlines.md, "The policy object": raises ValueError with the message."""
    if spec is None:
        return Policy(Zone(''), False, set())
    tz = spec['time_zone']
    try:
        if tz == 'Local':  # deadlines.md: a verifier SHOULD refuse it
            raise ValueError
        zone = Zone(tz)
    except Exception:
        raise ValueError('deadline policy: unknown time zone %s' % go_quote(tz))
    holidays = set()
    for h in spec['holidays'] or []:
        m = HOLIDAY_RE.match(h)
        ok = False
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            ok = 1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)
        if not ok:
            raise ValueError('deadline policy: holiday %s is not a date (YYYY-MM-DD)' % go_quote(h))
        holidays.add((y, mo, d))
    return Policy(zone, bool(spec['roll_to_working_day']), holidays)


# ---------------------------------------------------------------------------
# Checkpoints and witnesses (README.md, "Version 2 (checkpoints)")
# ---------------------------------------------------------------------------

# Go's unicode.IsSpace.
_GO_SPACES = set('\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a'
                 '\u2028\u2029\u202f\u205f\u3000')
SIG_PREFIX = '\u2014 '  # an em dash and a space


def valid_key_name(name):
    """A signed-note key name: not empty, no white space, no '+'."""
    return name != '' and '+' not in name and not any(ch in _GO_SPACES for ch in name)


def key_hash(name, key):
    """The signed-note key hash: the first 4 bytes of SHA-256(name || "\\n" || key)."""
    return int.from_bytes(sha256(name.encode('utf-8') + b'\n' + key)[:4], 'big')


class NoteError(Exception):
    pass


def split_note(msg):
    """A signed note's text (ending in a newline) and its signature lines:
    the text ends at the note's last empty line."""
    i = msg.rfind('\n\n')
    if i < 0:
        return None, None
    return msg[:i + 1], msg[i + 2:]


def note_open(msg, verifiers):
    """C2SP signed-note, as golang.org/x/mod/sumdb/note.Open reads it.
    verifiers maps (name, key hash) to a list of functions checking a
    signature over the text. Returns the text and the (name, hash) of the
    signatures verified; raises NoteError with the reason."""
    for ch in msg:
        if ord(ch) < 0x20 and ch != '\n':
            raise NoteError('malformed note')
    text, sigs = split_note(msg)
    if text is None or sigs == '' or not sigs.endswith('\n'):
        raise NoteError('malformed note')
    verified, seen, count = [], set(), 0
    for line in sigs[:-1].split('\n'):
        if not line.startswith(SIG_PREFIX):
            raise NoteError('malformed note')
        name, _, b64 = line[len(SIG_PREFIX):].partition(' ')
        sig = b64decode_lenient(b64)
        if sig is None or not valid_key_name(name) or b64 == '' or len(sig) < 5:
            raise NoteError('malformed note')
        h = int.from_bytes(sig[:4], 'big')
        count += 1
        if count > 100:
            raise NoteError('malformed note')
        vs = verifiers.get((name, h))
        if vs is None:
            continue  # a signature by a key not given: left unverified
        if len(vs) > 1:
            raise NoteError('ambiguous key %s+%08x' % (name, h))
        if (name, h) in seen:
            continue
        seen.add((name, h))
        if not vs[0](text.encode('utf-8'), sig[4:]):
            raise NoteError('invalid signature for key %s+%08x' % (name, h))
        verified.append((name, h))
    if not verified:
        raise NoteError('note has no verifiable signatures')
    return text, verified


CHECKPOINT_TIME_RE = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$')


def parse_checkpoint_text(text):
    """The checkpoint's text: origin, size, root hash, time. Returns (size,
    root, time); raises LookupProblem('CHECKPOINT_FORM', message)."""
    lines = (text[:-1] if text.endswith('\n') else text).split('\n')
    if len(lines) != 4 or not text.endswith('\n'):
        raise LookupProblem('CHECKPOINT_FORM', 'bad checkpoint: want 4 lines (origin, size, root hash, time), got %d' % len(lines))
    size_s = lines[1]
    if not re.match(r'^(0|[1-9][0-9]*)$', size_s) or int(size_s) > INT64_MAX:
        raise LookupProblem('CHECKPOINT_FORM', 'bad checkpoint: size %s is not a decimal number' % go_quote(size_s))
    root = b64decode_strict(lines[2])
    if root is None or len(root) != 32:
        raise LookupProblem('CHECKPOINT_FORM', 'bad checkpoint: root hash %s is not 32 bytes in canonical base64' % go_quote(lines[2]))
    t = None
    if lines[3].startswith('time '):
        s = lines[3][len('time '):]
        m = CHECKPOINT_TIME_RE.match(s)
        if m and not (m.group(1) or '').endswith('0'):
            t = parse_time(s)
    if t is None:
        raise LookupProblem('CHECKPOINT_FORM', 'bad checkpoint: the extension line %s is not "time" and an RFC 3339 UTC time'
                            % go_quote(lines[3]))
    return int(size_s), root, t


def open_checkpoint(keys, msg):
    """Opens a version 2 certificate's checkpoint with the orchestrator keys
    of the keys file. Returns (size, root, time, key id); raises
    LookupProblem with the reason."""
    origin = msg.split('\n', 1)[0]
    verifiers, by_hash = {}, {}
    for k in keys:
        if k['role'] != 'orchestrator':
            continue
        if not valid_key_name(origin):
            raise LookupProblem('CHECKPOINT_ORIGIN', 'bad checkpoint: malformed verifier id')
        h = key_hash(origin, b'\x01' + k['public_key'])
        verifiers.setdefault((origin, h), []).append(
            lambda text, sig, pub=k['public_key']: ed25519_ok(pub, text, sig))
        by_hash[h] = k
    try:
        text, verified = note_open(msg, verifiers)
    except NoteError as e:
        raise LookupProblem('CHECKPOINT_SIGNATURE', 'bad checkpoint: not signed by an orchestrator key of the keys file for log %s: %s'
                            % (go_quote(origin), e))
    size, root, t = parse_checkpoint_text(text)
    k = by_hash[verified[0][1]]
    if not valid_at(k, t):
        raise LookupProblem('CHECKPOINT_KEY_NOT_VALID', 'bad checkpoint: key not valid at the time of signing: %s at %s'
                            % (k['key_id'], t.utc().stamp()))
    return size, root, t, k['key_id']


class WitnessKey(object):
    """A witness's verifier key (C2SP signed-note vkey, type 0x04)."""

    def __init__(self, vkey):
        vkey = vkey.strip()
        name, plus1, rest = vkey.partition('+')
        hash16, plus2, key64 = rest.partition('+')
        key = b64decode_lenient(key64)
        ok = plus1 and plus2 and len(hash16) == 8 and re.match(r'^[0-9a-fA-F]{8}$', hash16) and key is not None \
            and len(key) == 33 and key[0] == 0x04
        if not ok:
            raise BadInput('malformed witness verifier key')
        if not valid_key_name(name):
            raise BadInput('malformed witness verifier key: invalid name')
        self.name, self.public = name, key[1:]
        self.hash = key_hash(name, key)
        if self.hash != int(hash16, 16):
            raise BadInput('malformed witness verifier key: key hash does not match name and key')
        self.canonical = '%s+%08x+%s' % (name, self.hash, b64encode(key))


def checkpoint_text_ok(text):
    """What a cosignature may be over: a checkpoint (C2SP tlog-checkpoint):
    origin, size, root hash, then non-empty extension lines."""
    if text.count('\n') < 3 or not text.endswith('\n') or len(text.encode('utf-8')) > 1000000:
        return False
    lines = text.split('\n', 3)
    if not re.match(r'^(0|[1-9][0-9]*)$', lines[1]) or int(lines[1]) > INT64_MAX:
        return False
    root = b64decode_lenient(lines[2])
    if root is None or len(root) != 32 or b64encode(root) != lines[2]:
        return False  # the checkpoint must read back as itself
    rest = lines[3]
    while rest:
        before, nl, rest = rest.partition('\n')
        if before == '' or not nl:
            return False
    return True


def cosignature_ok(w, text, sig):
    """A cosignature/v1 (C2SP tlog-cosignature): 8 bytes of time, big-endian,
    and an Ed25519 signature over "cosignature/v1\\ntime <t>\\n" || text."""
    if len(sig) != 72 or not checkpoint_text_ok(text.decode('utf-8')):
        return False
    t = int.from_bytes(sig[:8], 'big')
    return ed25519_ok(w.public, b'cosignature/v1\ntime %d\n' % t + text, sig[8:])


def cosigned_by(witnesses, checkpoint):
    """Which of the witnesses' keys cosigned the checkpoint: the witness
    names, once each. Raises LookupProblem when a line does not parse, or a
    line by one of the keys does not verify."""
    text, sigs = split_note(checkpoint)
    if text is None or sigs == '':
        raise LookupProblem('WITNESS_MALFORMED', 'witnesses: malformed signed checkpoint note: no signature lines after an empty line')
    keys, seen = [], set()
    for w in witnesses:
        if w.canonical not in seen:
            seen.add(w.canonical)
            keys.append(w)
    names = set()
    lines = sigs.split('\n')
    if lines[-1] == '':
        lines = lines[:-1]
    for i, line in enumerate(lines):
        complete = i < len(lines) - 1 or sigs.endswith('\n')
        body = line[len(SIG_PREFIX):] if line.startswith(SIG_PREFIX) else None
        name, sp, b64 = (body or '').partition(' ')
        raw = b64decode_lenient(b64)
        if body is None or not complete or not sp or name == '' or raw is None or len(raw) < 4:
            raise LookupProblem('WITNESS_MALFORMED', 'witnesses: malformed signed checkpoint note: malformed cosignature line')
        h = int.from_bytes(raw[:4], 'big')
        bad = None
        for w in keys:
            if name != w.name or h != w.hash:
                continue
            if len(raw) < 5:
                bad = 'witnesses: witness %s: cosignature does not verify: malformed note' % w.name
                continue
            if not cosignature_ok(w, text.encode('utf-8'), raw[4:]):
                bad = 'witnesses: witness %s: cosignature does not verify: invalid signature for key %s+%08x' % (w.name, name, h)
                continue
            if int.from_bytes(raw[4:12], 'big') > INT64_MAX:
                bad = 'witnesses: witness %s: malformed cosignature line: malformed cosignature' % w.name
                continue
            names.add(w.name)
            bad = None
            break
        if bad:
            raise LookupProblem('WITNESS_BAD_COSIGNATURE', bad)
    return names


# ---------------------------------------------------------------------------
# Verification (verification.md)
# ---------------------------------------------------------------------------

ENDING = ('fulfilled', 'failed', 'partially_retained', 'denied', 'expired')


def final_event(state):
    return state if state in ('denied', 'expired', 'failed', 'partially_retained') else 'fulfilled'


def verify(data, keys):
    """verification.md: returns (certificate or None, [Problem])."""
    try:
        c = read_certificate(data)
    except Fatal as f:
        return None, [f.problem]
    problems = []

    def fail(code, message):
        problems.append(Problem(code, message))

    # Step 3 first: its outcome decides the time of step 2.
    log = c['log']
    th_problem = None
    if c['version'] == 1:
        th = log['tree_head']
        size, root, th_time = th['size'], th['root_hash'], th['time']
        text = ('%d\n%s\n%s\n' % (size, b64encode(root), th_time.utc().rfc3339nano())).encode('ascii')
        try:
            k = key_for(keys, th['key_id'], 'orchestrator', '', th_time)
            verify_domain(k, 'tree-head', text, th['signature'] or b'')
        except LookupProblem as e:
            th_problem = Problem('TREE_HEAD/' + e.code, 'tree head: ' + e.message)
    else:
        try:
            size, root, th_time, _ = open_checkpoint(keys, log['checkpoint'])
        except LookupProblem as e:
            th_problem = Problem(e.code, e.message)
            size, root, th_time = 0, b'', None
    th_valid = th_problem is None

    # Step 2: the certificate's signature.
    at = th_time if th_valid else c['completed_at']
    signed = encode(dict(c, signature=None), ('obj', CERTIFICATE)).encode('utf-8')
    try:
        k = key_for(keys, c['key_id'], 'orchestrator', '', at)
        verify_domain(k, 'certificate', signed, c['signature'] or b'')
    except LookupProblem as e:
        fail('CERT_SIGNATURE/' + e.code, 'certificate signature: ' + e.message)
    # Step 3's problem, reported after step 2's.
    if th_problem is not None:
        problems.append(th_problem)

    # Step 4: the log entries.
    E, named, accepted, resolved, ends, extensions = [], set(), {}, set(), [], []
    created, manifest, lifted = None, '', None
    prev = None
    for le in log['entries'] or []:
        idx = le['index']
        if prev is not None and idx <= prev:
            fail('ENTRY_ORDER', "log entry %d: the entries are not in the log's order" % idx)
        prev = idx
        raw = le['entry'].encode('utf-8')
        try:
            e = decode_entry(raw)
        except EntryError as x:
            fail('ENTRY_DECODE', 'log entry %d: %s' % (idx, x))
            continue
        if e['request_id'] != c['request_id']:
            fail('ENTRY_REQUEST', 'log entry %d belongs to request %s' % (idx, e['request_id']))
        if th_valid:
            try:
                check_inclusion(le['proof'] or [], size, root, idx, leaf_hash(raw))
            except ProofFailed as x:
                fail('ENTRY_INCLUSION', 'entry %d is not in the log of size %d: %s' % (idx, size, x))
        E.append(e)
        if e['system']:
            named.add(e['system'])
        ev = e['event']
        if ev == 'created':
            created = e
        elif ev == 'receipt_accepted':
            accepted[e['system']] = e
        elif ev == 'task_resolved':
            resolved.add(e['system'])
        elif ev == 'export_assembled':
            manifest = e['manifest_sha256']
        elif ev == 'extended':
            extensions.append(e)
        elif ev == 'lifted':
            lifted = e['lift']
        elif ev in ENDING:
            ends.append(e)

    check_request(c, created, lifted, fail)
    check_end(c, ends, fail)
    # Step 7: the export manifest.
    if c['export_manifest_sha256'] != manifest:
        fail('MANIFEST', "the certificate's export manifest digest %s is not the one the log recorded last (%s)"
             % (go_quote(c['export_manifest_sha256']), go_quote(manifest)))
    check_systems(keys, c, named, accepted, resolved, fail)
    check_state(c, fail)
    check_decisions(c, E, fail)
    check_deadlines(c, created, extensions, E, fail)
    return c, problems


def check_request(c, created, lifted, fail):
    """Step 5."""
    if created is None:
        fail('NO_CREATED', 'the log has no "created" entry for the request')
        return
    if created['subject_hash'] != c['subject_hash'] or created['tenant'] != c['tenant'] or created['type'] != c['type'] \
            or created['received_at'] is None or created['received_at'] != c['received_at']:
        fail('REQUEST_MISMATCH', "the certificate's request does not match the request the log recorded")
        return
    t = c['type']
    lift_logged, lift_wanted = created['lift'], t == 'lift'
    if t == 'restriction':
        lift_logged, lift_wanted = lifted, lifted is not None
    for what, fields, logged, certified, wanted in (
            ('sweep (policy, cut-off, categories)', SWEEP, created['sweep'], c['sweep'], t == 'sweep'),
            ('purposes', PURPOSES, created['purposes'], c['purposes'], t in ('consent_withdrawal', 'objection')),
            ('re-application (system, since, people)', REAPPLY, created['reapply'], c['reapply'], t == 'reapply'),
            ('lift (restriction, reason)', LIFT, lift_logged, c['lift'], lift_wanted)):
        if encode(logged, ('pobj', fields)) != encode(certified, ('pobj', fields)) or (certified is not None) != wanted:
            fail('SCOPE', "the certificate's %s is not what the log recorded" % what)
            return


def check_end(c, ends, fail):
    """Step 6."""
    if not ends:
        fail('NO_END', 'the log has no entry ending the request')
        return
    final = ends[-1]
    if final['at'] != c['completed_at'] or final['event'] != final_event(c['state']):
        fail('END_MISMATCH', 'the log ended the request %s at %s, the certificate says %s at %s'
             % (final['event'], final['at'].rfc3339nano(), c['state'], c['completed_at'].rfc3339nano()))
    answered = next((e['at'] for e in ends if e['event'] in ('fulfilled', 'partially_retained')), None)
    a = c['answered_at']
    if a is None:
        return
    if answered is None:
        fail('ANSWERED_AT', 'answered_at is %s, but the log records no answer (fulfilled or partially_retained)' % a.rfc3339nano())
    elif a != answered:
        fail('ANSWERED_AT', 'answered_at is %s, but the log first answered the request at %s' % (a.rfc3339nano(), answered.rfc3339nano()))
    elif not a < c['completed_at']:
        fail('ANSWERED_AT', 'answered_at %s is not before completed_at %s: the request was not answered before it ended'
             % (a.rfc3339nano(), c['completed_at'].rfc3339nano()))


def refused(state):
    return state in ('denied', 'expired')


def check_systems(keys, c, named, accepted, resolved, fail):
    """Step 8."""
    systems = c['systems'] or []
    names = [s['system'].encode('utf-8') for s in systems]
    if names != sorted(names):
        fail('SYSTEMS_ORDER', 'systems are not in order')
    if not systems and not refused(c['state']):
        fail('NO_SYSTEM', 'the certificate names no system')
    if systems and refused(c['state']):
        fail('SYSTEMS_REFUSED', 'a request %s sent no task, yet the certificate names systems' % c['state'])
    seen = set()
    for s in systems:
        n = s['system']
        if n in seen:
            fail('SYSTEM_TWICE', '%s: listed twice' % n)
        seen.add(n)
        if n not in named:
            fail('SYSTEM_NOT_NAMED', '%s: the log does not name this system' % n)
        if not s['receipt']:
            if s['outcome'] == 'resolved' and n not in resolved:
                fail('SYSTEM_UNRESOLVED', '%s: resolved, but the log records no one resolving it (task_resolved)' % n)
            elif s['outcome'] not in ('dead_letter', 'resolved'):
                fail('SYSTEM_NO_RECEIPT', '%s: no receipt for outcome %s' % (n, go_quote(s['outcome'])))
            continue
        p = check_receipt(keys, c, s, accepted.get(n))
        if p is not None:
            fail(*p)
    for n in sorted(named - seen, key=lambda x: x.encode('utf-8')):
        fail('SYSTEM_LEFT_OUT', 'the log names %s, the certificate does not' % n)


def check_receipt(keys, c, s, logged):
    """Step 8.4: one system's receipt; the first problem, or None."""
    n = s['system']
    try:
        r = proto_parse(s['receipt'], RECEIPT)
    except ProtoError as e:
        return 'RECEIPT_DECODE', '%s: receipt does not decode: %s' % (n, e)
    h = receipt_hash(r)
    received = ts_time(r['connector_time'])
    if logged is not None and logged['receipt_hash'] == h:
        received = logged['at']
    for field, required in (('connector_time', True), ('retain_until', False)):
        ts = r[field]
        if ts is None and not required:
            continue
        if ts is None or not ts_valid(ts):
            return 'RECEIPT_TIME', '%s: receipt: the receipt has a time out of range: %s' % (n, field)
    claimed = ts_time(r['connector_time'])
    if (claimed.sec - received.sec) * 1000000000 + claimed.nsec - received.nsec > 300 * 1000000000:
        return 'RECEIPT_SKEW', '%s: receipt: the receipt is dated after the time it was received: it says %s, it was received %s' \
            % (n, claimed.utc().stamp(), received.utc().stamp())
    try:
        k = key_for(keys, r['key_id'] or '', 'connector', r['system'] or '', received)
        verify_domain(k, 'receipt', receipt_canonical(r), r['signature'] or b'')
    except LookupProblem as e:
        return 'RECEIPT_' + e.code, '%s: receipt: %s' % (n, e.message)
    rid, task = r['request_id'] or '', r['task_id'] or ''
    if rid != c['request_id'] or (r['system'] or '') != n or task != c['request_id'] + '.' + n:
        return 'RECEIPT_TASK', "%s: the receipt answers task %s, not this request's" % (n, task)
    action = r['action'] or 0
    if action != TYPE_ACTION.get(c['type'], 1):
        return 'RECEIPT_ACTION', '%s: the receipt answers a %s, not a %s' % (n, ACTIONS.get(action, str(action)), c['type'])
    o = outcome_name(r['outcome'] or 0)
    if not answers(c['type'], o):
        return 'RECEIPT_OUTCOME', "%s: the receipt's outcome %s does not answer a %s" % (n, go_quote(o), c['type'])
    sw = c['sweep']
    if sw is not None:
        rs = r['sweep']
        if rs is None or (rs['policy'] or '') != sw['policy'] or (rs['clock'] or '') != sw['clock'] \
                or ts_time(rs['cutoff']) != sw['cutoff'] or bool(rs['dry_run']) != bool(sw['dry_run']) \
                or rs['categories'] != ((sw['systems'] or {}).get(n) or []):
            return 'RECEIPT_SWEEP', "%s: the receipt answers another sweep than the run's" % n
    pu = c['purposes']
    if pu is not None and r['categories'] != ((pu['systems'] or {}).get(n) or []):
        return 'RECEIPT_PURPOSES', "%s: the receipt erased other data categories than the purposes'" % n
    if pu is None and r['categories']:
        return 'RECEIPT_CATEGORIES', '%s: the receipt answers an erasure limited to categories, not this request' % n
    rr = r['restriction_id'] or ''
    if c['type'] == 'lift' and c['lift'] is not None and rr != c['lift']['restriction']:
        return 'RECEIPT_RESTRICTION', '%s: the receipt lifts restriction %s, not %s' % (n, go_quote(rr), go_quote(c['lift']['restriction']))
    if c['type'] != 'lift' and rr != '':
        return 'RECEIPT_RESTRICTION', '%s: the receipt lifts a restriction, not this request' % n
    if encode(system_result_of(r), ('obj', SYSTEM)) != encode(s, ('obj', SYSTEM)):
        return 'SUMMARY_MISMATCH', '%s: the summary does not match the signed receipt' % n
    if logged is None or logged['receipt_hash'] != h:
        return 'RECEIPT_NOT_ACCEPTED', '%s: the log did not accept this receipt' % n
    return None


def check_state(c, fail):
    """Step 9."""
    if refused(c['state']):
        return
    want = 'fulfilled'
    for s in c['systems'] or []:
        o = s['outcome']
        if not s['receipt'] and o != 'resolved':
            o = 'dead_letter'
        if o in ('dead_letter', 'failed'):
            want = 'failed'
            break
        ru = s['retain_until']
        if c['type'] == 'erasure' and o == 'retained' and ru is not None and ru != GO_ZERO_TIME:
            want = 'partially_retained'
    if want != c['state']:
        fail('STATE', "state %s does not follow from the systems' answers (%s)" % (go_quote(c['state']), go_quote(want)))


def check_decisions(c, E, fail):
    """Step 10."""
    for name, event in (('verification', 'verified'), ('denial', 'denied')):
        logged = None
        for e in E:
            if e['event'] == event and e['actor'] is not None:
                logged = e
        d = c[name]
        if logged is None and d is None:
            continue
        if logged is None:
            fail('DECISION', 'the certificate shows a %s the log does not record' % name)
        elif d is None:
            fail('DECISION', 'the log records a %s by %s %s that the certificate leaves out'
                 % (name, logged['actor']['kind'], logged['actor']['id']))
        else:
            note_hash = hashlib.sha256(d['note'].encode('utf-8')).hexdigest() if d['note'] else ''
            if not (d['at'] == logged['at'] and d['actor'] == logged['actor'] and d['method'] == logged['method']
                    and d['ground'] == logged['ground'] and note_hash == logged['note_sha256']):
                fail('DECISION', "the certificate's %s (by %s %s at %s) is not the one the log records"
                     % (name, d['actor']['kind'], d['actor']['id'], d['at'].rfc3339nano()))


def spec_equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a['time_zone'] == b['time_zone'] and a['roll_to_working_day'] == b['roll_to_working_day'] \
        and (a['holidays'] or []) == (b['holidays'] or [])


def check_deadlines(c, created, extensions, E, fail):
    """Steps 11 to 13."""
    spec = c['deadline_policy']
    if spec is not None:
        if spec['time_zone'] in ('', 'UTC') and not spec['roll_to_working_day']:
            fail('POLICY_NOT_CANONICAL', 'deadline policy: not canonical: a policy that counts as the default one (UTC, no roll) must be left out')
    try:
        policy = read_policy(spec)
    except ValueError as e:
        fail('POLICY_INVALID', str(e))
        return
    if created is not None and not spec_equal(created['deadline_policy'], spec):
        fail('POLICY_MISMATCH', "the certificate's deadline policy is not the one the log recorded for the request")
    original = policy.deadline(c['received_at'])
    if created is not None and (created['deadline'] is None or created['deadline'] != original):
        fail('DEADLINE_LOGGED', "the log recorded a deadline that is not one month after receipt (%s) under the request's deadline policy"
             % original.stamp())
    x = c['extension']
    if x is None:
        if c['deadline'] != original:
            fail('DEADLINE', "deadline %s is not one month after receipt (%s) under the request's deadline policy"
                 % (c['deadline'].stamp(), original.stamp()))
        if extensions:
            fail('EXTENSION_UNSHOWN', 'the log records an extension of the deadline, the certificate shows none')
    else:
        if x['original_deadline'] != original:
            fail('EXTENSION_ORIGINAL', "extension: original deadline %s is not one month after receipt (%s) under the request's deadline policy"
                 % (x['original_deadline'].stamp(), original.stamp()))
        extended = policy.extended(c['received_at'])
        if c['deadline'] != extended:
            fail('EXTENDED_DEADLINE', "extended deadline %s is not the two further months the law allows (%s) under the request's deadline policy"
                 % (c['deadline'].stamp(), extended.stamp()))
        if x['reason'] == '':
            fail('EXTENSION_NO_REASON', 'extension: no reason given')
        if not extensions:
            fail('EXTENSION_UNLOGGED', 'extension: the log records no extension of the deadline')
        elif len(extensions) == 1:
            e = extensions[0]
            if e['at'] != x['at']:
                fail('EXTENSION_AT', 'extension: made at %s, the log says at %s' % (x['at'].rfc3339nano(), e['at'].rfc3339nano()))
            if e['at'] > original:
                fail('EXTENSION_TOO_LATE', 'extension: made at %s, after the original deadline %s: too late to extend'
                     % (e['at'].rfc3339nano(), original.stamp()))
            if e['deadline'] is None or e['deadline'] != c['deadline'] or e['original_deadline'] is None \
                    or e['original_deadline'] != original:
                fail('EXTENSION_DEADLINES', "extension: the deadlines the log recorded are not the certificate's")
            if e['reason_sha256'] != hashlib.sha256(x['reason'].encode('utf-8')).hexdigest():
                fail('EXTENSION_REASON', 'extension: the reason is not the one the log recorded (its hash differs)')
        else:
            fail('EXTENSION_MANY', 'extension: the log records %d extensions of the deadline; the law allows one' % len(extensions))
        notices = [e for e in E if e['event'] == 'notice_delivered' and e['notice'] == 'extension']
        first = None
        for e in notices:
            if first is None or e['at'] < first:
                first = e['at']
        channels = sorted(set(e['channel'] for e in notices if e['channel']))
        delivered = x['notice_delivered_at']
        same_first = (first is None and delivered is None) or (first is not None and delivered is not None and first == delivered)
        if not same_first or channels != (x['notice_channels'] or []):
            fail('EXTENSION_NOTICE', "extension: the notice's delivery (%s on %s) is not what the log's notice_delivered entries say (%s on %s)"
                 % (delivered.rfc3339nano() if delivered else 'never', go_list(x['notice_channels']),
                    first.rfc3339nano() if first else 'never', go_list(channels)))
    responded = c['answered_at'] if c['answered_at'] is not None else c['completed_at']
    effective = c['deadline']
    if x is not None and (x['notice_delivered_at'] is None or x['notice_delivered_at'] > x['original_deadline']):
        effective = x['original_deadline']
    met = responded <= effective
    if met != c['deadline_met']:
        fail('DEADLINE_MET', 'deadline_met is %s, but %s %s against deadline %s says %s'
             % (str(c['deadline_met']).lower(), 'the answer' if c['answered_at'] is not None else 'completion',
                responded.stamp(), effective.stamp(), str(met).lower()))


def check_witnessed(c, witnesses, quorum):
    """lethectl verify --witness, on a certificate that verified (README.md,
    "Witnesses")."""
    if c['version'] < 2:
        return Problem('WITNESS_NO_CHECKPOINT', 'witnesses: the certificate (version %d) carries no checkpoint for witnesses to cosign'
                       % c['version'])
    try:
        names = cosigned_by(witnesses, c['log']['checkpoint'])
    except LookupProblem as e:
        return Problem(e.code, e.message)
    if len(names) < quorum:
        return Problem('WITNESS_QUORUM', 'witnesses: the checkpoint is cosigned by %d of the witnesses given, %d required'
                       % (len(names), quorum))
    return None


# ---------------------------------------------------------------------------
# The test vectors (docs/spec/vectors): what each invalid one is made for,
# as this verifier's codes. A vector fails as expected when the problems
# include the Go verifier's words (index.json's "error"), or else a problem
# of the code its words map to.
# ---------------------------------------------------------------------------

EXPECTED_CODES = [
    ('not a certificate', ('CERT_SYNTAX', 'CERT_NOT_CANONICAL')),
    ('not in canonical form', ('CERT_NOT_CANONICAL', 'CERT_SYNTAX')),
    ('this verifier reads versions', ('CERT_VERSION',)),
    ('the log is proved against a', ('CERT_LOG_FORM',)),
    ('certificate signature: key not in the keys file', ('CERT_SIGNATURE/KEY_UNKNOWN',)),
    ('certificate signature: key not registered for this system', ('CERT_SIGNATURE/KEY_WRONG_SYSTEM',)),
    ('certificate signature: key not valid at the time of signing', ('CERT_SIGNATURE/KEY_NOT_VALID',)),
    ('certificate signature: signature does not verify', ('CERT_SIGNATURE/BAD_SIGNATURE',)),
    ('tree head: key not in the keys file', ('TREE_HEAD/KEY_UNKNOWN',)),
    ('tree head: key not registered', ('TREE_HEAD/KEY_WRONG_SYSTEM',)),
    ('tree head: key not valid', ('TREE_HEAD/KEY_NOT_VALID',)),
    ('tree head: signature does not verify', ('TREE_HEAD/BAD_SIGNATURE',)),
    ('bad checkpoint: key not valid at the time of signing', ('CHECKPOINT_KEY_NOT_VALID',)),
    ('bad checkpoint: not signed by an orchestrator key', ('CHECKPOINT_SIGNATURE',)),
    ('bad checkpoint: malformed verifier id', ('CHECKPOINT_ORIGIN',)),
    ('bad checkpoint', ('CHECKPOINT_FORM',)),
    ("the entries are not in the log's order", ('ENTRY_ORDER',)),
    ('belongs to request', ('ENTRY_REQUEST',)),
    ('is not in the log of size', ('ENTRY_INCLUSION',)),
    ('log entry', ('ENTRY_DECODE',)),
    ('the log has no "created" entry', ('NO_CREATED',)),
    ("the certificate's request does not match", ('REQUEST_MISMATCH',)),
    ('is not what the log recorded', ('SCOPE',)),
    ('the log has no entry ending the request', ('NO_END',)),
    ('the log ended the request', ('END_MISMATCH',)),
    ('answered_at', ('ANSWERED_AT',)),
    ('export manifest digest', ('MANIFEST',)),
    ('systems are not in order', ('SYSTEMS_ORDER',)),
    ('the certificate names no system', ('NO_SYSTEM',)),
    ('sent no task, yet', ('SYSTEMS_REFUSED',)),
    ('listed twice', ('SYSTEM_TWICE',)),
    ('the log does not name this system', ('SYSTEM_NOT_NAMED',)),
    ('resolved, but the log records no one', ('SYSTEM_UNRESOLVED',)),
    ('no receipt for outcome', ('SYSTEM_NO_RECEIPT',)),
    ('receipt does not decode', ('RECEIPT_DECODE',)),
    ('receipt: the receipt has a time out of range', ('RECEIPT_TIME',)),
    ('receipt: the receipt is dated after', ('RECEIPT_SKEW',)),
    ('receipt: key not in the keys file', ('RECEIPT_KEY_UNKNOWN',)),
    ('receipt: key not registered for this system', ('RECEIPT_KEY_WRONG_SYSTEM',)),
    ('receipt: key not valid at the time of signing', ('RECEIPT_KEY_NOT_VALID',)),
    ('receipt: signature does not verify', ('RECEIPT_BAD_SIGNATURE',)),
    ('the receipt answers task', ('RECEIPT_TASK',)),
    ("the receipt's outcome", ('RECEIPT_OUTCOME',)),
    ('another sweep than the run', ('RECEIPT_SWEEP',)),
    ('other data categories than the purposes', ('RECEIPT_PURPOSES',)),
    ('an erasure limited to categories', ('RECEIPT_CATEGORIES',)),
    ('the receipt lifts', ('RECEIPT_RESTRICTION',)),
    ('the receipt answers a', ('RECEIPT_ACTION',)),
    ('the summary does not match the signed receipt', ('SUMMARY_MISMATCH',)),
    ('the log did not accept this receipt', ('RECEIPT_NOT_ACCEPTED',)),
    ('the certificate does not', ('SYSTEM_LEFT_OUT',)),
    ("does not follow from the systems' answers", ('STATE',)),
    ('verification', ('DECISION',)),
    ('denial', ('DECISION',)),
    ('deadline policy: not canonical', ('POLICY_NOT_CANONICAL',)),
    ('deadline policy: unknown time zone', ('POLICY_INVALID',)),
    ('deadline policy: holiday', ('POLICY_INVALID',)),
    ("deadline policy is not the one the log recorded", ('POLICY_MISMATCH',)),
    ('the log recorded a deadline that is not', ('DEADLINE_LOGGED',)),
    ('extended deadline', ('EXTENDED_DEADLINE',)),
    ('extension: original deadline', ('EXTENSION_ORIGINAL',)),
    ('extension: no reason given', ('EXTENSION_NO_REASON',)),
    ('extension: the log records no extension', ('EXTENSION_UNLOGGED',)),
    ('extension: made at', ('EXTENSION_AT', 'EXTENSION_TOO_LATE')),
    ('extension: the deadlines the log recorded', ('EXTENSION_DEADLINES',)),
    ('extension: the reason is not', ('EXTENSION_REASON',)),
    ('extensions of the deadline; the law allows one', ('EXTENSION_MANY',)),
    ("extension: the notice's delivery", ('EXTENSION_NOTICE',)),
    ('the log records an extension of the deadline, the certificate shows none', ('EXTENSION_UNSHOWN',)),
    ('deadline_met is', ('DEADLINE_MET',)),
    ('is not one month after receipt', ('DEADLINE',)),
    ('witnesses: ', ('WITNESS_NO_CHECKPOINT', 'WITNESS_MALFORMED', 'WITNESS_BAD_COSIGNATURE', 'WITNESS_QUORUM')),
]


def expected_codes(error):
    for words, codes in EXPECTED_CODES:
        if words in error:
            return codes
    return None


def judge_vector(v, problems):
    """Whether this verifier says of a vector what index.json says. Returns
    (ok, how, why)."""
    if v['valid']:
        if problems:
            return False, '', 'a valid vector does not verify'
        return True, 'verified', ''
    if not problems:
        return False, '', 'an invalid vector verifies; want an error saying %s' % go_quote(v['error'])
    want = v['error']
    codes = [p.code for p in problems]
    # As the Go check does: a variant made for another check must not be
    # caught by the certificate's signature.
    if 'certificate signature' not in want and any(c.startswith('CERT_SIGNATURE') for c in codes):
        return False, '', 'caught by the certificate\'s signature, not by the check it targets (%s)' % go_quote(want)
    if any(want in p.message for p in problems):
        return True, 'by message', ''
    expected = expected_codes(want)
    if expected and any(c in expected for c in codes):
        return True, 'by code', ''
    return False, '', 'no problem for the expected reason %s (want %s)' % (go_quote(want), '/'.join(expected or ('an unmapped reason',)))


def run_vectors(folder, as_json):
    try:
        with open(os.path.join(folder, 'index.json'), 'rb') as f:
            index = json.loads(f.read().decode('utf-8'))
    except (OSError, ValueError) as e:
        raise BadInput('vectors: %s' % e)
    keysets = {}
    results = []
    for v in index:
        if v['keys'] not in keysets:
            with open(os.path.join(folder, v['keys']), 'rb') as f:
                keysets[v['keys']] = read_keys(f.read(), v['keys'])
        with open(os.path.join(folder, v['file']), 'rb') as f:
            data = f.read()
        _, problems = verify(data, keysets[v['keys']])
        ok, how, why = judge_vector(v, problems)
        results.append({'file': v['file'], 'valid': v['valid'], 'expected': v['error'], 'ok': ok, 'how': how,
                        'why': why, 'problems': [{'code': p.code, 'message': p.message} for p in problems]})
    valid = [r for r in results if r['valid']]
    invalid = [r for r in results if not r['valid']]
    summary = {
        'vectors': len(results),
        'valid': len(valid), 'valid_verified': sum(r['ok'] for r in valid),
        'invalid': len(invalid), 'invalid_rejected': sum(1 for r in invalid if r['problems']),
        'invalid_as_expected_by_message': sum(1 for r in invalid if r['ok'] and r['how'] == 'by message'),
        'invalid_as_expected_by_code': sum(1 for r in invalid if r['ok'] and r['how'] == 'by code'),
        'disagreements': sum(1 for r in results if not r['ok']),
    }
    if as_json:
        json.dump({'summary': summary, 'results': results}, sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write('\n')
    else:
        for r in results:
            if r['ok']:
                print('ok    %-52s %s' % (r['file'], r['how'] if not r['valid'] else 'verified'))
            else:
                print('FAIL  %-52s %s' % (r['file'], r['why']))
                for p in r['problems']:
                    print('        [%s] %s' % (p['code'], p['message']))
        print('%(vectors)d vectors: %(valid_verified)d of %(valid)d valid verified; %(invalid_rejected)d of %(invalid)d invalid '
              'rejected, %(invalid_as_expected_by_message)d with the expected error word for word, '
              '%(invalid_as_expected_by_code)d for the expected reason in other words; %(disagreements)d disagreements' % summary)
    return 0 if summary['disagreements'] == 0 else 1


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog='lethe_verify.py',
        description="Verify a Lethe certificate of fulfilment offline with the public keys alone "
                    "(exit 0 verified, 1 not, 2 unreadable input).")
    ap.add_argument('certificate', nargs='?', help='the certificate file (CERT.json), as downloaded')
    ap.add_argument('--keys', help='the keys file saved earlier (lethectl keys export)')
    ap.add_argument('--witness', action='append', default=[], metavar='VKEY',
                    help="require a cosignature of the certificate's checkpoint by this witness verifier key (repeatable)")
    ap.add_argument('--witness-quorum', type=int, default=0, metavar='N',
                    help='how many of the --witness keys must have cosigned (default: all)')
    ap.add_argument('--vectors', metavar='DIR', help='check every test vector of DIR (docs/spec/vectors) instead')
    ap.add_argument('--json', action='store_true', help='with --vectors: write the results as JSON')
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    if Ed25519PublicKey is None:
        sys.stderr.write('lethe_verify: the cryptography package is missing (Debian: apt-get install python3-cryptography)\n')
        return 2
    if zoneinfo is None:
        sys.stderr.write('lethe_verify: Python 3.9 or later is needed (zoneinfo)\n')
        return 2
    try:
        if args.vectors:
            if args.certificate or args.keys or args.witness:
                raise BadInput('--vectors takes no certificate, --keys or --witness')
            return run_vectors(args.vectors, args.json)
        if not args.certificate:
            raise BadInput('missing argument CERT.json')
        if not args.keys:
            raise BadInput('--keys is required: a certificate is checked against the public keys you saved, never against a server')
        witnesses = [WitnessKey(w) for w in args.witness]
        if args.witness_quorum < 0 or args.witness_quorum > len(witnesses):
            raise BadInput('--witness-quorum must be between 1 and the %d --witness keys given' % len(witnesses))
        # By default all of them, counted as cosignatures are: by witness
        # name (a witness's rotated keys are one witness).
        quorum = args.witness_quorum or len({w.name for w in witnesses})
        try:
            with open(args.certificate, 'rb') as f:
                data = f.read()
        except OSError as e:
            raise BadInput('certificate: %s' % e)
        try:
            with open(args.keys, 'rb') as f:
                keys = read_keys(f.read(), args.keys)
        except OSError as e:
            raise BadInput('keys file: %s' % e)
        if not keys:
            raise BadInput('keys file %s: no keys in it' % args.keys)
    except BadInput as e:
        sys.stderr.write('lethe_verify: %s\n' % e)
        return 2
    c, problems = verify(data, keys)
    if not problems and witnesses:
        p = check_witnessed(c, witnesses, quorum)
        if p is not None:
            problems = [p]
    if problems:
        what = 'this file'
        if c is not None and c['request_id']:
            what = 'the certificate (claiming to be of request %s)' % c['request_id']
        print('NOT VERIFIED: %s cannot be relied on:' % what)
        for p in problems:
            print('  - [%s] %s' % (p.code, p.message))
        return 1
    print('VERIFIED: request %s (%s, tenant %s), %s, received %s, deadline %s, completed %s, deadline %s'
          % (c['request_id'], c['type'], c['tenant'], c['state'], c['received_at'].stamp(), c['deadline'].stamp(),
             c['completed_at'].stamp(), 'met' if c['deadline_met'] else 'MISSED'))
    for s in c['systems'] or []:
        print('  %s: %s%s' % (s['system'], s['outcome'], ' (' + s['detail'] + ')' if s['detail'] else ''))
    if witnesses:
        print('WITNESSED: the checkpoint the entries are proved in is cosigned by %d witness(es), of the %d key(s) given'
              % (quorum, len(witnesses)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
