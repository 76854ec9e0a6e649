package parser

import (
	"strconv"
	"time"
)

// AppendJSON appends t as one JSON object, the form "p1logger decode" prints:
// the registers under their p1 field names (exact decimals, kWh/W/V/A), then
// "time" (RFC 3339, omitted when the meter sent none), "meter_id", "version",
// "crc" ("ok" or "none"), "mbus" (a list of {channel, kind, meter_id, value,
// unit, time}) and the rest of what the telegram carried. Registers the meter
// did not send are omitted. Keys come in a fixed order, so output is stable.
//
// A telegram with lines that did not decode ends with "errors": one
// {"line", "offset", "text", "reason"} per line (see [Telegram.LineErrors]);
// those lines' registers are absent.
func (t *Telegram) AppendJSON(b []byte) []byte {
	b = append(b, '{')
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
	}
	if !t.Time.IsZero() {
		key("time")
		b = appendJSONTime(b, t.Time)
	}
	if len(t.MeterID) > 0 {
		key("meter_id")
		b = appendJSONBytes(b, t.MeterID)
	}
	if len(t.Version) > 0 {
		key("version")
		b = appendJSONBytes(b, t.Version)
	}
	key("crc")
	b = appendJSONString(b, t.CRC.String())
	key("header")
	b = appendJSONBytes(b, t.Header)
	for f := Field(0); int(f) < NumFields; f++ {
		if d, ok := t.Get(f); ok {
			key(f.Name())
			b = d.AppendText(b)
		}
	}
	if !t.DemandMaxAt.IsZero() {
		key("demand_max_month_at")
		b = appendJSONTime(b, t.DemandMaxAt)
	}
	if len(t.EAN) > 0 {
		key("ean")
		b = appendJSONBytes(b, t.EAN)
	}
	if len(t.TextCode) > 0 {
		key("text_code")
		b = appendJSONBytes(b, t.TextCode)
	}
	if len(t.TextMessage) > 0 {
		key("text_message")
		b = appendJSONBytes(b, t.TextMessage)
	}
	key("mbus")
	b = append(b, '[')
	for i := range t.MBus {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.MBus[i].appendJSON(b)
	}
	b = append(b, ']')
	if len(t.Peaks) > 0 {
		key("peaks")
		b = append(b, '[')
		for i, pk := range t.Peaks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"month":`...)
			b = appendJSONTime(b, pk.Month)
			b = append(b, `,"at":`...)
			b = appendJSONTime(b, pk.At)
			b = append(b, `,"peak_w":`...)
			b = pk.Value.AppendText(b)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(t.FailureLog) > 0 {
		key("power_failure_log")
		b = append(b, '[')
		for i, pf := range t.FailureLog {
			if i > 0 {
				b = append(b, ',')
			}
			if pf.NoData {
				b = append(b, `{"end":null,"duration_s":null}`...)
				continue
			}
			b = append(b, `{"end":`...)
			b = appendJSONTime(b, pf.End)
			b = append(b, `,"duration_s":`...)
			b = strconv.AppendInt(b, int64(pf.Duration/time.Second), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(t.Other) > 0 {
		key("other")
		b = append(b, '[')
		for i, o := range t.Other {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"obis":"`...)
			b = o.OBIS.AppendText(b)
			b = append(b, `","raw":`...)
			b = appendJSONBytes(b, o.Raw)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if errs := t.LineErrors(); len(errs) > 0 {
		key("errors")
		b = append(b, '[')
		for i, err := range errs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONLineError(b, err)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendJSONLineError(b []byte, err error) []byte {
	se, ok := err.(*SyntaxError)
	if !ok {
		b = append(b, `{"reason":`...)
		b = appendJSONString(b, err.Error())
		return append(b, '}')
	}
	b = append(b, `{"line":`...)
	b = strconv.AppendInt(b, int64(se.Line), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, int64(se.Offset), 10)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, se.Text)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, se.Msg)
	return append(b, '}')
}

func (m *MBus) appendJSON(b []byte) []byte {
	b = append(b, `{"channel":`...)
	b = strconv.AppendUint(b, uint64(m.Channel), 10)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, m.Kind.String())
	b = append(b, `,"meter_id":`...)
	if len(m.ID) > 0 {
		b = appendJSONBytes(b, m.ID)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"value":`...)
	if m.HasValue {
		b = m.Value.AppendText(b)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"unit":`...)
	if len(m.Unit) > 0 {
		b = appendJSONBytes(b, m.Unit)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"time":`...)
	b = appendJSONTime(b, m.Time)
	if m.Type >= 0 {
		b = append(b, `,"type":`...)
		b = strconv.AppendInt(b, int64(m.Type), 10)
	}
	if len(m.EAN) > 0 {
		b = append(b, `,"ean":`...)
		b = appendJSONBytes(b, m.EAN)
	}
	if m.Valve >= 0 {
		b = append(b, `,"valve":`...)
		b = strconv.AppendInt(b, int64(m.Valve), 10)
	}
	if m.Breaker >= 0 {
		b = append(b, `,"breaker_state":`...)
		b = strconv.AppendInt(b, int64(m.Breaker), 10)
	}
	return append(b, '}')
}

// appendJSONTime appends RFC 3339 with the zone offset, or null for the zero time.
func appendJSONTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		b = appendJSONByte(b, s[i])
	}
	return append(b, '"')
}

// appendJSONBytes quotes raw meter bytes. Meters send ASCII; any other byte
// (a header with 0xAB, say) is shown as the Latin-1 character of that value,
// so the output is always valid UTF-8 and nothing is silently dropped.
func appendJSONBytes(b []byte, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		b = appendJSONByte(b, c)
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

func appendJSONByte(b []byte, c byte) []byte {
	switch {
	case c == '"' || c == '\\':
		return append(b, '\\', c)
	case c < 0x20 || c >= 0x7f:
		return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, c)
}
