package parser_test

import (
	"fmt"
	"time"

	"github.com/p1logger/p1logger/parser"
)

func ExampleParse() {
	raw := []byte("/ISK5\\2M550T-1011\r\n\r\n" +
		"1-3:0.2.8(50)\r\n" +
		"0-0:1.0.0(261025023000W)\r\n" +
		"0-0:96.1.1(4530303334303036383130353136343136)\r\n" +
		"1-0:1.8.1(003808.351*kWh)\r\n" +
		"1-0:1.8.2(002948.827*kWh)\r\n" +
		"1-0:1.7.0(00.498*kW)\r\n" +
		"0-1:24.1.0(003)\r\n" +
		"0-1:24.2.1(261025020000S)(01569.646*m3)\r\n" +
		"!")
	raw = fmt.Appendf(raw, "%04X\r\n", parser.CRC16(raw))

	loc, _ := time.LoadLocation("Europe/Amsterdam")
	t, err := parser.Parse(raw, loc)
	if err != nil {
		fmt.Println(err)
		return
	}
	taken, _ := t.Get(parser.Taken)
	power, _ := t.Get(parser.PowerTaken)
	gas := t.GasMBus()
	fmt.Println(t.Time, t.CRC)
	fmt.Printf("meter %s: %s kWh taken, %s W now\n", t.MeterID, taken, power)
	fmt.Printf("gas %s %s at %s\n", gas.Value, gas.Unit, gas.Time)
	// Output:
	// 2026-10-25 02:30:00 +0100 CET ok
	// meter E0034006810516416: 6757.178 kWh taken, 498 W now
	// gas 1569.646 m3 at 2026-10-25 02:00:00 +0200 CEST
}
