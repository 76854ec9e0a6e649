package parser

// Field names one scalar register of a telegram. The first fields, up to
// [NumP1Fields], are exactly the fields of the InfluxDB measurement "p1"
// (see DESIGN.md); the rest are decoded and shown by "p1logger decode" but not
// written to "p1".
type Field uint8

// Fields of the "p1" measurement, in the order DESIGN.md lists them.
const (
	TakenT1         Field = iota // taken_t1_kwh, 1-0:1.8.1
	TakenT2                      // taken_t2_kwh, 1-0:1.8.2
	Taken                        // taken_kwh, 1-0:1.8.0 or the sum of the tariffs
	InjectedT1                   // injected_t1_kwh, 1-0:2.8.1
	InjectedT2                   // injected_t2_kwh, 1-0:2.8.2
	Injected                     // injected_kwh, 1-0:2.8.0 or the sum of the tariffs
	PowerTaken                   // power_taken_w, 1-0:1.7.0
	PowerInjected                // power_injected_w, 1-0:2.7.0
	PowerNet                     // power_net_w, taken − injected
	PowerTakenL1                 // power_taken_l1_w, 1-0:21.7.0
	PowerTakenL2                 // power_taken_l2_w, 1-0:41.7.0
	PowerTakenL3                 // power_taken_l3_w, 1-0:61.7.0
	PowerInjectedL1              // power_injected_l1_w, 1-0:22.7.0
	PowerInjectedL2              // power_injected_l2_w, 1-0:42.7.0
	PowerInjectedL3              // power_injected_l3_w, 1-0:62.7.0
	VoltageL1                    // voltage_l1_v, 1-0:32.7.0
	VoltageL2                    // voltage_l2_v, 1-0:52.7.0
	VoltageL3                    // voltage_l3_v, 1-0:72.7.0
	CurrentL1                    // current_l1_a, 1-0:31.7.0
	CurrentL2                    // current_l2_a, 1-0:51.7.0
	CurrentL3                    // current_l3_a, 1-0:71.7.0
	Tariff                       // tariff (integer), 0-0:96.14.0
	DemandAvg                    // demand_avg_w, 1-0:1.4.0
	DemandMaxMonth               // demand_max_month_w, 1-0:1.6.0

	// NumP1Fields counts the fields above: those written to measurement "p1".
	NumP1Fields int = iota
)

// Decoded registers that are not part of measurement "p1".
const (
	TakenT3           Field = iota + Field(NumP1Fields) // taken_t3_kwh, 1-0:1.8.3
	TakenT4                                             // taken_t4_kwh, 1-0:1.8.4
	InjectedT3                                          // injected_t3_kwh, 1-0:2.8.3
	InjectedT4                                          // injected_t4_kwh, 1-0:2.8.4
	PowerFailures                                       // power_failures, 0-0:96.7.21
	LongPowerFailures                                   // long_power_failures, 0-0:96.7.9
	VoltageSagsL1                                       // voltage_sags_l1, 1-0:32.32.0
	VoltageSagsL2                                       // voltage_sags_l2, 1-0:52.32.0
	VoltageSagsL3                                       // voltage_sags_l3, 1-0:72.32.0
	VoltageSwellsL1                                     // voltage_swells_l1, 1-0:32.36.0
	VoltageSwellsL2                                     // voltage_swells_l2, 1-0:52.36.0
	VoltageSwellsL3                                     // voltage_swells_l3, 1-0:72.36.0
	BreakerState                                        // breaker_state, 0-0:96.3.10 (0 off, 1 on, 2 ready)
	LimiterW                                            // limiter_threshold_w, 0-0:17.0.0 in kW or W
	LimiterA                                            // limiter_threshold_a, 0-0:17.0.0 in A (DSMR 2.2/3)
	LimiterVA                                           // limiter_threshold_va, 0-0:17.0.0 in kVA (Luxembourg)
	FuseA                                               // fuse_threshold_a, 1-0:31.4.0

	// NumFields counts every Field.
	NumFields int = iota + NumP1Fields
)

var fieldNames = [NumFields]string{
	TakenT1: "taken_t1_kwh", TakenT2: "taken_t2_kwh", Taken: "taken_kwh",
	InjectedT1: "injected_t1_kwh", InjectedT2: "injected_t2_kwh", Injected: "injected_kwh",
	PowerTaken: "power_taken_w", PowerInjected: "power_injected_w", PowerNet: "power_net_w",
	PowerTakenL1: "power_taken_l1_w", PowerTakenL2: "power_taken_l2_w", PowerTakenL3: "power_taken_l3_w",
	PowerInjectedL1: "power_injected_l1_w", PowerInjectedL2: "power_injected_l2_w", PowerInjectedL3: "power_injected_l3_w",
	VoltageL1: "voltage_l1_v", VoltageL2: "voltage_l2_v", VoltageL3: "voltage_l3_v",
	CurrentL1: "current_l1_a", CurrentL2: "current_l2_a", CurrentL3: "current_l3_a",
	Tariff: "tariff", DemandAvg: "demand_avg_w", DemandMaxMonth: "demand_max_month_w",

	TakenT3: "taken_t3_kwh", TakenT4: "taken_t4_kwh", InjectedT3: "injected_t3_kwh", InjectedT4: "injected_t4_kwh",
	PowerFailures: "power_failures", LongPowerFailures: "long_power_failures",
	VoltageSagsL1: "voltage_sags_l1", VoltageSagsL2: "voltage_sags_l2", VoltageSagsL3: "voltage_sags_l3",
	VoltageSwellsL1: "voltage_swells_l1", VoltageSwellsL2: "voltage_swells_l2", VoltageSwellsL3: "voltage_swells_l3",
	BreakerState: "breaker_state", LimiterW: "limiter_threshold_w", LimiterA: "limiter_threshold_a",
	LimiterVA: "limiter_threshold_va", FuseA: "fuse_threshold_a",
}

// Name returns the field's name: the InfluxDB field key for p1 fields and the
// JSON key of "p1logger decode" for all of them.
func (f Field) Name() string {
	if int(f) >= NumFields {
		return "field?"
	}
	return fieldNames[f]
}

// String returns f.Name().
func (f Field) String() string { return f.Name() }

// IsInteger reports whether the field is a count or state, written to
// InfluxDB as an integer rather than a float.
func (f Field) IsInteger() bool {
	switch f {
	case Tariff, PowerFailures, LongPowerFailures, VoltageSagsL1, VoltageSagsL2, VoltageSagsL3,
		VoltageSwellsL1, VoltageSwellsL2, VoltageSwellsL3, BreakerState:
		return true
	}
	return false
}
