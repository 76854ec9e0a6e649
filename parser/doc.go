// Package parser turns the raw bytes a P1 port emits into typed, unit-normalised
// readings.
//
// It is the pure core of p1logger's pipeline: bytes in, a [Telegram] or a precise
// error out. It does no I/O, starts no goroutines, reads no clock and logs
// nothing, so it can be fuzzed, benchmarked and golden-tested in isolation.
//
// The pieces, in the order data meets them:
//
//   - [Splitter] is a [bufio.SplitFunc] that finds telegrams ("/" … "!CRC") in a
//     byte stream with a bounded buffer, skips garbage between them and hands
//     a cut telegram on as its own token so that [Parse] reports it and the
//     next telegram is not lost.
//   - [CRC16] is the CRC-16/ARC the DSMR 4+ standard puts behind the "!".
//   - [Parse] and [ParseInto] check the CRC and decode every line: DSMR 2.2 to
//     5.x, Belgian e-MUCS, Luxembourg Smarty and the Nordic, Austrian, German,
//     Hungarian, Irish and Lithuanian variants. Register values stay exact
//     ([Decimal]); kW become W and Wh become kWh; meter timestamps are resolved
//     with their summer/winter flag in a caller-given location. A value no
//     meter can send (a negative energy register, more digits than a register
//     has, a timestamp that is no date) is a line error, and no total or net
//     power is derived from it. Lines the parser does not interpret are kept
//     in [Telegram.Other], never dropped.
package parser
