package parser

import "bytes"

// Country returns the country whose P1 dialect t is written in, as far as
// the telegram itself tells: "be" (Belgian e-MUCS), "nl" (Dutch DSMR),
// "lu" (Luxembourg Smarty), or "" when its lines fit no single country (Nordic, Austrian,
// German, Hungarian meters, a bare heat meter). The tariff registers
// mean different things per country: tariff 1 is the peak ("day",
// heures pleines) register in Belgium and the low ("dal") one in the
// Netherlands, so that a page or a bill can only name them once it knows.
//
// The rules, checked in this order, use what only one country's
// specification has:
//   - "lu": the identification line starts with "Lux" (Smarty's header).
//   - "be": the capacity tariff's month peak 1-0:1.6.0 or its history
//     0-0:98.1.0 (not the quarter-hour average 1-0:1.4.0 alone, which
//     Lithuanian meters send too), a five-digit e-MUCS version 0-0:96.1.4
//     ("50217"; DSMR's 1-3:0.2.8 has two digits), or Fluvius' "FLU" header.
//   - "nl": a two-digit DSMR 4 or 5 version ("40", "42", "50") together
//     with the tariff indicator 0-0:96.14.0, which Austrian meters on the
//     same version lines do not send; or, without any version line (DSMR
//     2.2 and 3, a Dutch standard), the tariff indicator, both taken
//     tariff registers and a gas meter on the M-Bus.
func Country(t *Telegram) string {
	switch {
	case hasPrefixFold(t.Header, "lux"):
		return "lu"
	case t.Has(DemandMaxMonth) || len(t.Peaks) > 0,
		len(t.Version) >= 5 && t.Version[0] == '5' && digits(t.Version),
		hasPrefixFold(t.Header, "flu"):
		return "be"
	case len(t.Version) == 2 && (t.Version[0] == '4' || t.Version[0] == '5') && digits(t.Version) && t.Has(Tariff):
		return "nl"
	case len(t.Version) == 0 && t.Has(Tariff) && t.Has(TakenT1) && t.Has(TakenT2) && t.GasMBus() != nil:
		return "nl"
	}
	return ""
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

func digits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
