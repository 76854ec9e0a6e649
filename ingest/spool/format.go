package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"
)

// # Files
//
// Dir holds segment files named by a 20-digit number that grows
// (00000000000000000001.seg, …), a cursor file, and a lock file that keeps
// a second p1logger from using the same directory. A segment starts with the
// 8 bytes "P1SPOOL\x02" and holds records, one per Append (a large one is
// cut at line ends into pieces of at most RecordBytes of line protocol):
//
//	offset  size  field
//	0       4     sync marker "\xf1P1r"
//	4       4     CRC-32C of bytes 8 … 48 (the rest of the header)
//	8       4     stored payload length n (little endian, as all fields)
//	12      4     CRC-32C of the n stored bytes
//	16      8     sequence number, +1 per record across all segments
//	24      8     append time, Unix nanoseconds
//	32      4     number of lines in the payload
//	36      4     length of the payload's line protocol, uncompressed
//	40      4     lines of all records before this one in the segment
//	44      1     codec: 0 line protocol as is, 1 one zstd frame, 2 one zstd
//	              frame made with the segment's dictionary, 3 the dictionary
//	45      3     zero
//	48      n     the payload: whole lines, compressed
//
// The header has its own checksum so that a damaged length is never
// trusted, and the sync marker lets recovery scan forward from a damaged
// record to the next intact one: damage costs the records it touches and
// no other. The count of lines before each record tells how many points a
// damaged stretch held even when its own headers are lost; the sequence
// numbers tell how many records.
//
// A segment whose first record is large enough (minDictBytes) begins with
// two copies of its dictionary, records of codec 3 and no lines: the line
// protocol of that first record, compressed alone. The records after them
// may be compressed with it (codec 2; codec.go says why). Reading them needs
// one intact copy; a segment with both copies damaged loses its codec-2
// records, counted like any damage. Dictionary records carry sequence
// numbers like the others, so damage accounting and the cursor need no
// special case, but they are never handed out by Peek nor counted as
// waiting batches.
//
// Segments of format 1 ("P1SPOOL\x01", p1logger before compression) are
// still read, so an upgrade keeps the spool; they are never appended to.
// Their records have a 32-byte header without marker or codec:
//
//	0  4  payload length n     16  8  append time
//	4  4  CRC-32C of 8 … 32+n  24  4  number of lines
//	8  8  sequence number      28  4  zero
//	32 n  line protocol
//
// In format 1 damage ends the segment (there is no marker to scan for).
//
// The cursor file holds the sequence number below which every record was
// delivered (8 bytes) and its CRC-32C (4 bytes).
const (
	segMagicV1     = "P1SPOOL\x01"
	segMagic       = "P1SPOOL\x02"
	segHeaderLen   = int64(len(segMagic))
	recSync        = "\xf1P1r"
	recHeaderLen   = 48
	recHeaderLenV1 = 32
	segSuffix      = ".seg"
	cursorName     = "cursor"
	lockName       = "lock"
	cursorLen      = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rec is what a Spool keeps in memory of one record on disk.
type rec struct {
	off    int64  // of its header in the segment
	n      uint32 // stored payload bytes
	raw    uint32 // line protocol bytes
	lines  uint32
	codec  byte
	seq    uint64
	at     int64 // append time, Unix nanoseconds
	before uint32
}

// size is the record's length on disk, header included.
func (r rec) size(v1 bool) int64 {
	if v1 {
		return recHeaderLenV1 + int64(r.n)
	}
	return recHeaderLen + int64(r.n)
}

// putHeader encodes r's header into h (recHeaderLen bytes) for payload.
func putHeader(h []byte, r rec, payload []byte) {
	copy(h, recSync)
	binary.LittleEndian.PutUint32(h[8:], r.n)
	binary.LittleEndian.PutUint32(h[12:], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint64(h[16:], r.seq)
	binary.LittleEndian.PutUint64(h[24:], uint64(r.at))
	binary.LittleEndian.PutUint32(h[32:], r.lines)
	binary.LittleEndian.PutUint32(h[36:], r.raw)
	binary.LittleEndian.PutUint32(h[40:], r.before)
	h[44], h[45], h[46], h[47] = r.codec, 0, 0, 0
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h[8:recHeaderLen], castagnoli))
}

// Reasons a record is refused.
var (
	errNoSync      = errors.New("no record marker")
	errHeaderCut   = errors.New("record header cut short")
	errHeaderCRC   = errors.New("header checksum mismatch")
	errPayloadCut  = errors.New("record cut short")
	errPayloadCRC  = errors.New("checksum mismatch")
	errSeqBack     = errors.New("sequence number goes back")
	errBadCodec    = errors.New("unknown codec")
	errRawTooLarge = errors.New("uncompressed length out of range")
	errNoDict      = errors.New("both copies of the segment's dictionary are damaged")
)

// parseRecord checks the format-2 record at the start of b, whose header
// lies at off in its segment. headerOK is true when the header itself is
// intact, even if the payload is not: its lines then say what was lost.
func parseRecord(b []byte, off int64) (r rec, headerOK bool, err error) {
	if len(b) < recHeaderLen {
		if !bytes.HasPrefix(b, []byte(recSync)[:min(len(b), len(recSync))]) {
			return rec{}, false, errNoSync
		}
		return rec{}, false, errHeaderCut
	}
	if string(b[:4]) != recSync {
		return rec{}, false, errNoSync
	}
	if crc32.Checksum(b[8:recHeaderLen], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return rec{}, false, errHeaderCRC
	}
	r = rec{
		off:    off,
		n:      binary.LittleEndian.Uint32(b[8:]),
		seq:    binary.LittleEndian.Uint64(b[16:]),
		at:     int64(binary.LittleEndian.Uint64(b[24:])),
		lines:  binary.LittleEndian.Uint32(b[32:]),
		raw:    binary.LittleEndian.Uint32(b[36:]),
		before: binary.LittleEndian.Uint32(b[40:]),
		codec:  b[44],
	}
	if r.codec > codecDict || (r.codec == codecDict && r.lines != 0) {
		return r, true, errBadCodec
	}
	if r.raw > maxRecordBytes || (r.codec == codecRaw && r.raw != r.n) {
		return r, true, errRawTooLarge
	}
	if int64(len(b)-recHeaderLen) < int64(r.n) {
		return r, true, errPayloadCut
	}
	if crc32.Checksum(b[recHeaderLen:recHeaderLen+int(r.n)], castagnoli) != binary.LittleEndian.Uint32(b[12:]) {
		return r, true, errPayloadCRC
	}
	return r, true, nil
}

// parseRecordV1 checks the format-1 record at the start of b.
func parseRecordV1(b []byte, off int64) (rec, error) {
	if len(b) < recHeaderLenV1 {
		return rec{}, errHeaderCut
	}
	n := binary.LittleEndian.Uint32(b[0:])
	if int64(n) > int64(len(b)-recHeaderLenV1) {
		return rec{}, errPayloadCut
	}
	if crc32.Checksum(b[8:recHeaderLenV1+int(n)], castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return rec{}, errPayloadCRC
	}
	return rec{
		off:   off,
		n:     n,
		raw:   n,
		codec: codecRaw,
		seq:   binary.LittleEndian.Uint64(b[8:]),
		at:    int64(binary.LittleEndian.Uint64(b[16:])),
		lines: binary.LittleEndian.Uint32(b[24:]),
	}, nil
}

// checkStored verifies a record read back from disk (header and payload)
// against what the Spool knows of it, and returns its payload.
func checkStored(b []byte, r rec, v1 bool) ([]byte, error) {
	if v1 {
		got, err := parseRecordV1(b, r.off)
		if err != nil {
			return nil, err
		}
		if got.seq != r.seq || got.n != r.n {
			return nil, errors.New("record changed on disk")
		}
		return b[recHeaderLenV1:], nil
	}
	got, _, err := parseRecord(b, r.off)
	if err != nil {
		return nil, err
	}
	if got.seq != r.seq || got.n != r.n {
		return nil, errors.New("record changed on disk")
	}
	return b[recHeaderLen:], nil
}

func appendTime(ns int64) time.Time { return time.Unix(0, ns) }
