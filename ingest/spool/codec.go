package spool

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codecs of a record's payload.
const (
	codecRaw      = 0 // line protocol as appended (format 1, and data that does not compress)
	codecZstd     = 1 // one zstd frame
	codecZstdDict = 2 // one zstd frame compressed with its segment's dictionary
	codecDict     = 3 // a dictionary record: one zstd frame of the segment's dictionary; no lines
)

// zstd was chosen over S2 by measurement, on 1 MiB of p1 line protocol
// (the synthetic cycle of damage_test.go, 7,000 gateways): zstd at its
// fastest level stored it in 17,968 bytes (58x) in 5.3 ms and decoded it in
// 0.7 ms (1.5 GB/s, far above the 5-10 MB/s of line protocol InfluxDB
// accepts, so replay stays at InfluxDB's ceiling); S2 "better" took 146,085
// bytes (7.2x) in 1.5 ms. Real cycles vary more than the synthetic one, so
// both ratios are upper bounds; the gap between the codecs is what counts.
var (
	codecOnce sync.Once
	encoder   *zstd.Encoder
	decoder   *zstd.Decoder
)

func codecs() (*zstd.Encoder, *zstd.Decoder) {
	codecOnce.Do(func() {
		// One goroutine each and the small-memory options: both are used
		// under the buffer's lock, one record at a time, on small boxes.
		var err error
		encoder, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithZeroFrames(true))
		if err != nil {
			panic(fmt.Sprintf("spool: zstd encoder options: %v", err)) // constant options: a programming error
		}
		decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			panic(fmt.Sprintf("spool: zstd decoder options: %v", err))
		}
	})
	return encoder, decoder
}

// A segment's dictionary is the line protocol of its first record. Meter
// readings change little from one cycle to the next (the same tags, field
// names, meter ids and most digits of every register), but one cycle's
// record, compressed alone, cannot refer to the cycle before it: measured on
// 133 one-second cycles of 100 simulated gateways (497 bytes of line
// protocol per point), zstd stored 70.4 bytes per point alone and 37.8 with
// the segment's first record as its dictionary (a built-in dictionary of
// one typical cycle gave 67.9; the previous record as dictionary, 19.8, but
// that chains every record to the one before, so one damaged record would
// take all that follow with it). The dictionary is written twice, as the
// segment's first two records, so that one damaged copy costs nothing.
//
// minDictBytes is the smallest first record made a dictionary: below it the
// two copies cost more than they save.
const minDictBytes = 256

// dictCodec compresses and decompresses the records of one segment with
// its dictionary. The encoder is made only for the segment appended to,
// the decoder only for segments read back.
type dictCodec struct {
	id   uint32
	dict []byte // line protocol
	z    []byte // dict compressed alone: the payload of its copies on disk
	enc  *zstd.Encoder
	dec  *zstd.Decoder
}

func newDictCodec(num uint64, dict []byte) *dictCodec {
	return &dictCodec{id: uint32(num%(1<<31)) + 1, dict: dict}
}

func (d *dictCodec) compress(dst, p []byte) ([]byte, byte) {
	if d.enc == nil {
		var err error
		d.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithZeroFrames(true),
			zstd.WithEncoderDictRaw(d.id, d.dict))
		if err != nil {
			panic(fmt.Sprintf("spool: zstd dictionary encoder options: %v", err)) // constant options
		}
	}
	start := len(dst)
	dst = d.enc.EncodeAll(p, dst)
	if len(dst)-start >= len(p) {
		return append(dst[:start], p...), codecRaw
	}
	return dst, codecZstdDict
}

func (d *dictCodec) decompress(dst, stored []byte) ([]byte, error) {
	if d.dec == nil {
		var err error
		d.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderDictRaw(d.id, d.dict))
		if err != nil {
			panic(fmt.Sprintf("spool: zstd dictionary decoder options: %v", err))
		}
	}
	return d.dec.DecodeAll(stored, dst)
}

func (d *dictCodec) close() {
	if d == nil {
		return
	}
	if d.enc != nil {
		d.enc.Close()
	}
	if d.dec != nil {
		d.dec.Close()
	}
}

// compress appends p's stored form to dst and returns it with its codec:
// zstd, or p itself when compression does not make it smaller.
func compress(dst, p []byte) ([]byte, byte) {
	enc, _ := codecs()
	start := len(dst)
	dst = enc.EncodeAll(p, dst)
	if len(dst)-start >= len(p) {
		return append(dst[:start], p...), codecRaw
	}
	return dst, codecZstd
}

// decompress appends the line protocol of a stored payload to dst. raw is
// its expected length: a payload that decodes to another length is damaged.
// d is the segment's dictionary, nil when it has none (or it was lost).
func decompress(dst, stored []byte, codec byte, raw int, d *dictCodec) ([]byte, error) {
	start := len(dst)
	switch codec {
	case codecRaw:
		dst = append(dst, stored...)
	case codecZstdDict:
		if d == nil {
			return dst, errNoDict
		}
		var err error
		if dst, err = d.decompress(dst, stored); err != nil {
			return dst[:start], fmt.Errorf("decompress: %w", err)
		}
	case codecZstd, codecDict:
		_, dec := codecs()
		var err error
		if dst, err = dec.DecodeAll(stored, dst); err != nil {
			return dst[:start], fmt.Errorf("decompress: %w", err)
		}
	default:
		return dst, fmt.Errorf("unknown codec %d", codec)
	}
	if len(dst)-start != raw {
		return dst[:start], fmt.Errorf("payload is %d bytes, header says %d", len(dst)-start, raw)
	}
	return dst, nil
}
