package parser

// CRC-16/ARC as DSMR 4+ uses it: polynomial 0x8005 reflected (0xA001),
// initial value 0, no final XOR, computed over "/" … "!" inclusive.
//
// The slicing-by-8 tables let the loop consume eight bytes per step; the
// plain 256-entry table is kept for the tail and as the benchmark floor.
var crcTables = func() (t [8][256]uint16) {
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
		for k := 1; k < 8; k++ {
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
	for len(b) >= 8 {
		crc ^= uint16(b[0]) | uint16(b[1])<<8
		crc = t[7][crc&0xff] ^ t[6][crc>>8] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
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
