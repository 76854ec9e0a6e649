package spool

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codecs of a record's payload.
const (
	codecRaw  = 0 // line protocol as appended (format 1, and data that does not compress)
	codecZstd = 1 // one zstd frame
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
func decompress(dst, stored []byte, codec byte, raw int) ([]byte, error) {
	start := len(dst)
	switch codec {
	case codecRaw:
		dst = append(dst, stored...)
	case codecZstd:
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
