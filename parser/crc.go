package parser

import "encoding/binary"

// CRC-16/ARC as DSMR 4+ uses it: polynomial 0x8005 reflected (0xA001),
// initial value 0, no final XOR, computed over "/" … "!" inclusive.
//
// The slicing-by-16 tables let the loop consume sixteen bytes per step
// (t[k] is the CRC of a byte followed by k zero bytes); the plain 256-entry
// table t[0] is kept for the tail and as the benchmark floor.
var crcTables = func() (t [16][256]uint16) {
	for i := range 256 {
		c := uint16(i)
		for range 8 {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < len(t); k++ {
			c = c>>8 ^ t[0][c&0xff]
			t[k][i] = c
		}
	}
	return t
}()

// CRC16 returns the CRC-16/ARC of b, the checksum DSMR 4 and later print
// after the "!" of a telegram.
func CRC16(b []byte) uint16 {
	return crc16Update(0, b)
}

func crc16Update(crc uint16, b []byte) uint16 {
	t := &crcTables
	for len(b) >= 16 {
		// Only the first two bytes mix with the running CRC; the other
		// fourteen lookups do not wait for it, and the parentheses let them
		// combine side by side. Half the bytes come from one word load and
		// shifts, half from byte loads, to share the work between the CPU's
		// arithmetic and load units.
		x := binary.LittleEndian.Uint64(b)
		_ = b[15]
		rest := ((t[13][byte(x>>16)] ^ t[12][byte(x>>24)]) ^ (t[11][byte(x>>32)] ^ t[10][byte(x>>40)])) ^
			((t[9][byte(x>>48)] ^ t[8][byte(x>>56)]) ^ (t[7][b[8]] ^ t[6][b[9]])) ^
			((t[5][b[10]] ^ t[4][b[11]]) ^ (t[3][b[12]] ^ t[2][b[13]])) ^
			(t[1][b[14]] ^ t[0][b[15]])
		c := crc ^ uint16(x)
		crc = t[15][byte(c)] ^ t[14][byte(c>>8)] ^ rest
		b = b[16:]
	}
	for _, c := range b {
		crc = crc>>8 ^ t[0][byte(crc)^c]
	}
	return crc
}

// crc16Table is the classic byte-at-a-time table CRC; tests compare CRC16
// against it and benchmarks use it as the floor a parser is measured against.
func crc16Table(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc>>8 ^ crcTables[0][byte(crc)^c]
	}
	return crc
}
