package dlms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/p1logger/p1logger/parser"
)

// Sentinel errors, wrapped in a *FrameError by Decode.
var (
	// ErrAuth: the frame is not from this key. Its tag did not match, or,
	// where no tag could be checked, the decrypted bytes are not a telegram
	// with a valid CRC. A wrong key, a wrong authentication key and a
	// damaged frame all look like this.
	ErrAuth = errors.New("authentication failed")
	// ErrTruncated: the frame ends before its declared length (the stream
	// ended, or the next frame began inside it).
	ErrTruncated = errors.New("truncated frame")
	// ErrSecurity: the security byte is none this package can decrypt.
	ErrSecurity = errors.New("unknown security byte")
	// ErrUnsupported: binary DLMS/COSEM (in HDLC or M-Bus frames, or inside
	// an encrypted frame) instead of a P1 telegram.
	ErrUnsupported = errors.New("not supported yet")
	// ErrNoKey: an encrypted frame arrived and the Decoder has no key.
	ErrNoKey = errors.New("no decryption key")
)

// FrameError is the error Decode returns for a frame it could not turn into
// a telegram: Err is one of the sentinels above, Detail says more in words
// a user can act on. It holds the meter's system title and frame counter
// (not secrets: the system title is printed on the meter), never a key.
type FrameError struct {
	SystemTitle [8]byte // zero when the frame is not a glo-ciphering frame
	Counter     uint32
	Err         error
	Detail      string
}

func (e *FrameError) Error() string {
	if e.SystemTitle == ([8]byte{}) {
		return fmt.Sprintf("%v: %s", e.Err, e.Detail)
	}
	return fmt.Sprintf("encrypted frame %d from meter %s: %v: %s", e.Counter, title(e.SystemTitle), e.Err, e.Detail)
}

func (e *FrameError) Unwrap() error { return e.Err }

// title prints a system title the way meters label it: three letters of
// manufacturer, then the serial number in hex.
func title(st [8]byte) string {
	for _, c := range st[:3] {
		if c < 'A' || c > 'Z' {
			return fmt.Sprintf("%X", st[:])
		}
	}
	return fmt.Sprintf("%s%X", st[:3], st[3:])
}

const (
	tagGloCiphering = 0xDB
	titleLen        = 8
	gcmTagLen       = 12
	// maxBody is the longest frame content accepted: security byte, frame
	// counter, the longest telegram and the tag. A longer declared length
	// is noise.
	maxBody = 5 + parser.MaxTelegramSize + gcmTagLen
	// MaxFrame bounds one frame: the header and maxBody. A caller's buffer
	// of MaxFrame bytes always lets Decode decide.
	MaxFrame = 13 + maxBody
)

// Decoder turns a stream of encrypted frames, plain telegrams and noise into
// plain telegrams. Keys are tried in order on every frame, the first that
// fits wins (a gateway has one; "p1logger decode" may hold several). The
// zero Decoder passes plain bytes through and reports encrypted frames with
// ErrNoKey. A Decoder is not safe for concurrent use.
type Decoder struct {
	Keys []Key

	ciphers []keyCipher
	// smarty[i]: a frame's tag verified with SmartyAuthKey under key i,
	// so this meter signs with it and every later frame must too (no
	// falling back to the CRC, which an attacker can forge).
	smarty []bool
	out    []byte
	apdu   string // what an authenticated frame held that is no telegram
}

type keyCipher struct {
	block cipher.Block
	gcm   cipher.AEAD
	aad   []byte // security byte (set per frame) ‖ authentication key
	lux   []byte // security byte ‖ SmartyAuthKey
	auth  bool
}

// Decode is a step in the manner of a bufio.SplitFunc: it looks at the
// buffered bytes data (atEOF: no more will come) and returns how many of
// them it consumed (advance) and the plain bytes they stand for (out), or
// advance 0 when it needs more bytes to decide. Plain bytes pass through
// unchanged; an encrypted frame becomes its telegram; a frame that cannot
// be decrypted is consumed and reported as a *FrameError, with no out.
// Noise before a frame is passed through, like plain bytes (the framing
// after it skips it). At EOF it always consumes something when data is not
// empty. out aliases data or the Decoder's own buffer and is valid until
// the next call. Decode never panics, whatever data holds.
func (d *Decoder) Decode(data []byte, atEOF bool) (advance int, out []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	switch frameAt(data, atEOF, false) {
	case kindNone:
		i := nextStart(data, 1, atEOF)
		return i, data[:i], nil
	case kindMaybe:
		if atEOF {
			return len(data), data, nil // cannot be a frame: too short
		}
		return 0, nil, nil
	case kindHDLC:
		return unsupported(data, atEOF, hdlcLen(data), "binary DLMS/COSEM in an HDLC frame (0x7E…), which some Austrian meters send instead of a P1 telegram")
	case kindMBus:
		return unsupported(data, atEOF, int(data[1])+6, "binary DLMS/COSEM in an M-Bus frame (0x68 L L 0x68), which some Austrian meters send instead of a P1 telegram")
	}
	return d.frame(data, atEOF)
}

// unsupported consumes a wrapped binary frame of n bytes (once it is
// buffered; at most to the end of data at EOF) and reports it.
func unsupported(data []byte, atEOF bool, n int, what string) (int, []byte, error) {
	if n > len(data) {
		if !atEOF {
			return 0, nil, nil
		}
		n = len(data)
	}
	return n, nil, &FrameError{Err: ErrUnsupported, Detail: what}
}

type frameKind int

const (
	kindNone  frameKind = iota // not the start of a frame
	kindMaybe                  // could be, more bytes will tell
	kindGlo                    // general-glo-ciphering header
	kindHDLC                   // HDLC frame carrying DLMS
	kindMBus                   // M-Bus long frame
)

// frameAt tells what starts at data[0]. strict also demands a security byte
// this package knows, for resynchronising inside a bad frame, where a
// chance 0xDB 0x08 in ciphertext must not pass for a frame.
func frameAt(data []byte, atEOF, strict bool) frameKind {
	maybe := func() frameKind {
		if atEOF {
			return kindNone
		}
		return kindMaybe
	}
	switch data[0] {
	case tagGloCiphering:
		if len(data) < 2 {
			return maybe()
		}
		if data[1] != titleLen {
			return kindNone
		}
		if len(data) < 2+titleLen+1 {
			return maybe()
		}
		p, n, ok := lengthAt(data, 2+titleLen)
		if !ok {
			return kindNone
		}
		if p < 0 || p >= len(data) {
			return maybe()
		}
		// A frame is awaited whole before anything behind it passes, so
		// a chance header in noise must not make the stream wait long:
		// no length beyond the longest telegram, a security control
		// byte of the form DLMS defines (ErrSecurity for the ones this
		// package cannot decrypt), or, when strict, one it can.
		if n > maxBody {
			return kindNone
		}
		sec := data[p]
		if _, known := securities[sec]; !known && (strict || sec&0x30 == 0 || sec&0x0F > 2) {
			return kindNone
		}
		return kindGlo
	case 0x7E:
		// HDLC frame format type 3 (0xA in the high nibble) and, within
		// the address and control fields, the LLC header of a DLMS
		// frame. A "~" in text is neither.
		if len(data) < 2 {
			return maybe()
		}
		if data[1]&0xF0 != 0xA0 {
			return kindNone
		}
		head := data[2:min(len(data), 20)]
		if bytes.Contains(head, []byte{0xE6, 0xE7, 0x00}) || bytes.Contains(head, []byte{0xE6, 0xE6, 0x00}) {
			return kindHDLC
		}
		if len(data) < 20 {
			return maybe()
		}
		return kindNone
	case 0x68:
		// M-Bus long frame: 68 L L 68 C, C a send or respond code. "h" in
		// text ("kWh)") is not followed by that.
		if len(data) < 5 {
			if len(data) >= 2 && data[1] < 3 || len(data) >= 3 && data[1] != data[2] || len(data) >= 4 && data[3] != 0x68 {
				return kindNone
			}
			return maybe()
		}
		if data[1] >= 3 && data[1] == data[2] && data[3] == 0x68 && mbusControl[data[4]] {
			return kindMBus
		}
	}
	return kindNone
}

var mbusControl = map[byte]bool{0x53: true, 0x73: true, 0x08: true, 0x18: true, 0x28: true, 0x38: true}

// securities maps the security bytes Decode can decrypt to whether their
// frames end in a GCM tag.
var securities = map[byte]bool{0x30: true, 0x31: true, 0x20: false, 0x21: false}

// lengthAt reads the A-XDR length at data[i]: one byte below 0x80, or 0x81
// or 0x82 and one or two bytes of length. It returns where the content
// starts (-1 when data ends inside the length) and the length; ok is false
// for a form no meter uses.
func lengthAt(data []byte, i int) (start, n int, ok bool) {
	switch b := data[i]; {
	case b < 0x80:
		return i + 1, int(b), true
	case b == 0x81:
		if len(data) < i+2 {
			return -1, 0, true
		}
		return i + 2, int(data[i+1]), true
	case b == 0x82:
		if len(data) < i+3 {
			return -1, 0, true
		}
		return i + 3, int(data[i+1])<<8 | int(data[i+2]), true
	}
	return 0, 0, false
}

// hdlcLen is the length of the HDLC frame at data[0] (both flags included)
// from its 11-bit length field, or 3 when data ends before that field.
func hdlcLen(data []byte) int {
	if len(data) < 3 {
		return 3
	}
	return int(data[1]&0x07)<<8 | int(data[2]) + 2
}

// nextStart returns the index, from from on, of the first byte that is or
// may be the start of a frame, or len(data).
func nextStart(data []byte, from int, atEOF bool) int {
	for i := from; i < len(data); i++ {
		switch data[i] {
		case tagGloCiphering, 0x7E, 0x68:
			if frameAt(data[i:], atEOF, false) != kindNone {
				return i
			}
		}
	}
	return len(data)
}

// frame decodes the general-glo-ciphering frame at data[0], whose header
// frameAt has seen.
func (d *Decoder) frame(data []byte, atEOF bool) (int, []byte, error) {
	var fe FrameError
	copy(fe.SystemTitle[:], data[2:2+titleLen])
	p, n, _ := lengthAt(data, 2+titleLen)
	total := p + n
	if total > len(data) {
		if !atEOF {
			return 0, nil, nil
		}
		fe.Err, fe.Detail = ErrTruncated, fmt.Sprintf("the stream ends after %d of its %d bytes", len(data), total)
		return len(data), nil, &fe
	}
	if n < 5 {
		fe.Err, fe.Detail = ErrTruncated, fmt.Sprintf("its length %d leaves no room for the security byte and frame counter", n)
		return total, nil, &fe
	}
	sec := data[p]
	fe.Counter = binary.BigEndian.Uint32(data[p+1 : p+5])
	tagged, known := securities[sec]
	if !known {
		fe.Err, fe.Detail = ErrSecurity, fmt.Sprintf("security byte 0x%02X; want 0x30 (encrypted and authenticated) or 0x20/0x21 (encrypted)", sec)
		return total, nil, &fe
	}
	body := data[p+5 : total]
	if tagged && len(body) < gcmTagLen {
		fe.Err, fe.Detail = ErrTruncated, fmt.Sprintf("%d bytes after the frame counter, fewer than its 12-byte tag", len(body))
		return total, nil, &fe
	}
	if len(d.Keys) == 0 {
		fe.Err, fe.Detail = ErrNoKey, "the meter encrypts its telegrams; give this gateway its key (P1_KEYS_FILE, or --key-file)"
		return total, nil, &fe
	}
	var iv [12]byte
	copy(iv[:], data[2:2+titleLen])
	copy(iv[titleLen:], data[p+1:p+5])
	d.setup()
	var last error
	for i := range d.ciphers {
		out, err := d.open(&d.ciphers[i], &d.smarty[i], sec, tagged, iv, body)
		if err == nil {
			return total, out, nil
		}
		last = err
	}
	// A frame that another frame starts inside was cut short: report it as
	// such and resume at the next one, which is likely whole. Looked for
	// only now, as a chance header in a good frame's ciphertext must not
	// cost that frame.
	if next := innerStart(data[:total]); next > 0 {
		fe.Err, fe.Detail = ErrTruncated, fmt.Sprintf("another frame starts at its byte %d, before its declared end at byte %d", next, total)
		return next, nil, &fe
	}
	fe.Err = last
	switch {
	case errors.Is(last, ErrUnsupported):
		fe.Detail = fmt.Sprintf("the decrypted frame holds binary DLMS/COSEM (%s), not a P1 telegram", d.apdu)
	case len(d.Keys) > 1:
		fe.Detail = fmt.Sprintf("none of the %d keys fits", len(d.Keys))
	case !tagged:
		fe.Detail = "the frame has no tag and the decrypted bytes are not a telegram with a valid CRC: wrong key, or a damaged frame"
	case d.Keys[0].hasAuth:
		fe.Detail = "the tag does not match: wrong key or authentication key, or a damaged frame"
	case d.smarty[0]:
		fe.Detail = "the tag does not match the Smarty authentication key, which earlier frames of this meter had: a damaged frame"
	default:
		fe.Detail = "the tag does not match the Smarty authentication key and the decrypted bytes are not a telegram with a valid CRC: wrong key, or a damaged frame"
	}
	return total, nil, &fe
}

// innerStart returns the index of the first glo-ciphering header after
// frame[0] inside frame, or 0.
func innerStart(frame []byte) int {
	for i := 1; i < len(frame); i++ {
		j := bytes.IndexByte(frame[i:], tagGloCiphering)
		if j < 0 {
			return 0
		}
		i += j
		if frameAt(frame[i:], false, true) == kindGlo {
			return i
		}
	}
	return 0
}

func (d *Decoder) setup() {
	if len(d.ciphers) == len(d.Keys) {
		return
	}
	d.ciphers = make([]keyCipher, len(d.Keys))
	d.smarty = make([]bool, len(d.Keys))
	for i, k := range d.Keys {
		block, err := aes.NewCipher(k.enc[:])
		if err != nil {
			panic("dlms: aes.NewCipher of a 16-byte key: " + err.Error()) // cannot happen
		}
		gcm, err := cipher.NewGCMWithTagSize(block, gcmTagLen)
		if err != nil {
			panic("dlms: cipher.NewGCMWithTagSize(12): " + err.Error()) // cannot happen
		}
		c := keyCipher{block: block, gcm: gcm, auth: k.hasAuth}
		c.aad = append([]byte{0}, k.auth[:]...)
		c.lux = append([]byte{0}, SmartyAuthKey[:]...)
		d.ciphers[i] = c
	}
}

// open decrypts body with one key, by the rule in the package
// documentation, into d.out.
func (d *Decoder) open(c *keyCipher, smarty *bool, sec byte, tagged bool, iv [12]byte, body []byte) ([]byte, error) {
	if tagged {
		aad := c.lux
		if c.auth {
			aad = c.aad
		}
		aad[0] = sec
		out, err := c.gcm.Open(d.out[:0], iv[:], body, aad)
		if err == nil {
			d.out = out
			*smarty = !c.auth
			switch {
			case len(out) == 0:
				d.apdu = "nothing"
				return nil, ErrUnsupported
			case out[0] != '/':
				d.apdu = fmt.Sprintf("APDU tag 0x%02X", out[0])
				return nil, ErrUnsupported
			}
			return out, nil
		}
		if c.auth || *smarty {
			return nil, ErrAuth
		}
		body = body[:len(body)-gcmTagLen]
	}
	// GCM encrypts with AES-CTR from counter block IV ‖ 00000002; Go's CTR
	// counts over all 128 bits where GCM counts over the last 32, which
	// differ only past 2^32 blocks, far beyond MaxFrame.
	var ctr [16]byte
	copy(ctr[:], iv[:])
	ctr[15] = 2
	if cap(d.out) < len(body) {
		d.out = make([]byte, len(body), max(len(body), 2048))
	}
	d.out = d.out[:len(body)]
	cipher.NewCTR(c.block, ctr[:]).XORKeyStream(d.out, body)
	if !crcValid(d.out) {
		return nil, ErrAuth
	}
	return d.out, nil
}

// crcValid reports whether b is a telegram, "/" … "!" and four hex digits
// of CRC-16 (then at most a line end), whose CRC matches.
func crcValid(b []byte) bool {
	if len(b) == 0 || b[0] != '/' {
		return false
	}
	end := bytes.LastIndexByte(b, '!')
	if end < 0 || len(b) < end+5 {
		return false
	}
	if tail := bytes.TrimRight(b[end+5:], "\r\n"); len(tail) > 0 {
		return false
	}
	var want uint16
	for _, c := range b[end+1 : end+5] {
		switch {
		case c >= '0' && c <= '9':
			want = want<<4 | uint16(c-'0')
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			want = want<<4 | uint16(c|0x20-'a'+10)
		default:
			return false
		}
	}
	return parser.CRC16(b[:end+1]) == want
}

// Seal appends to dst the general-glo-ciphering frame that carries
// telegram from the meter with system title st, frame counter fc and
// security byte sec (0x30, 0x31: with a tag, whose authentication key is
// k's or, when k has none, SmartyAuthKey; 0x20, 0x21: without). It is what
// a meter does, for p1sim and tests. It returns an error for another
// security byte or a frame longer than the 0x82 length form can say.
func Seal(dst []byte, k Key, st [8]byte, fc uint32, sec byte, telegram []byte) ([]byte, error) {
	tagged, ok := securities[sec]
	if !ok {
		return dst, fmt.Errorf("security byte 0x%02X: want 0x30, 0x31, 0x20 or 0x21", sec)
	}
	n := 5 + len(telegram)
	if tagged {
		n += gcmTagLen
	}
	if n > maxBody {
		return dst, fmt.Errorf("telegram of %d bytes: longer than a frame carries (%d)", len(telegram), parser.MaxTelegramSize)
	}
	dst = append(dst, tagGloCiphering, titleLen)
	dst = append(dst, st[:]...)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n <= 0xFF:
		dst = append(dst, 0x81, byte(n))
	default:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	}
	dst = append(dst, sec)
	dst = binary.BigEndian.AppendUint32(dst, fc)
	var iv [12]byte
	copy(iv[:], st[:])
	binary.BigEndian.PutUint32(iv[titleLen:], fc)
	block, err := aes.NewCipher(k.enc[:])
	if err != nil {
		return dst, err
	}
	if tagged {
		gcm, err := cipher.NewGCMWithTagSize(block, gcmTagLen)
		if err != nil {
			return dst, err
		}
		auth := SmartyAuthKey
		if k.hasAuth {
			auth = k.auth
		}
		return gcm.Seal(dst, iv[:], telegram, append([]byte{sec}, auth[:]...)), nil
	}
	var ctr [16]byte
	copy(ctr[:], iv[:])
	ctr[15] = 2
	start := len(dst)
	dst = append(dst, telegram...)
	cipher.NewCTR(block, ctr[:]).XORKeyStream(dst[start:], dst[start:])
	return dst, nil
}
