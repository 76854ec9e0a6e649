package sim

import (
	"math"
	"time"
)

// model is the household behind a meter: a base load, a fridge, appliances
// that switch on at random (more often when people are awake), solar panels
// following the sun and the clouds, a gas boiler heating against the
// season's temperature, and water taps.
type model struct {
	baseW    float64 // standby load
	kWp      float64 // solar panels; 0 for none
	pv3      bool    // three-phase inverter
	hlc      float64 // heating: litres of gas per hour per kelvin below the set point
	hasEV    bool
	phaseOf  [len(kinds)]int // which phase each appliance kind is wired to
	fridgeAt int64           // phase of the fridge cycle, seconds
	gridV    [3]float64      // grid voltage before the household's own effect
	cloud    float64         // 0 overcast … 1 clear, drifting
	apps     [8]running      // appliances switched on
}

type running struct {
	kind int
	watt float64
	end  time.Time
}

// kind is a class of appliance. Rates are starts per hour at full activity.
type kind struct {
	watt, wattVar  float64 // W, ± uniform
	minDur, maxDur time.Duration
	rate           float64
	gasLph         float64 // gas while running (hot water)
	waterLph       float64
	threePhase     bool
	evOnly         bool
}

var kinds = [...]kind{
	{watt: 2000, wattVar: 200, minDur: 2 * time.Minute, maxDur: 4 * time.Minute, rate: 0.5},                               // kettle
	{watt: 1100, wattVar: 100, minDur: time.Minute, maxDur: 5 * time.Minute, rate: 0.3},                                   // microwave
	{watt: 1800, wattVar: 600, minDur: 15 * time.Minute, maxDur: 40 * time.Minute, rate: 0.15},                            // cooking hob
	{watt: 2200, wattVar: 300, minDur: 30 * time.Minute, maxDur: 60 * time.Minute, rate: 0.04},                            // oven
	{watt: 700, wattVar: 400, minDur: 60 * time.Minute, maxDur: 120 * time.Minute, rate: 0.06},                            // washing machine
	{watt: 1200, wattVar: 300, minDur: 40 * time.Minute, maxDur: 90 * time.Minute, rate: 0.05},                            // dishwasher
	{watt: 2200, wattVar: 300, minDur: 60 * time.Minute, maxDur: 100 * time.Minute, rate: 0.02},                           // dryer
	{watt: 130, wattVar: 60, minDur: 30 * time.Minute, maxDur: 180 * time.Minute, rate: 0.3},                              // tv, computer
	{watt: 1200, wattVar: 200, minDur: 10 * time.Minute, maxDur: 25 * time.Minute, rate: 0.03},                            // vacuum cleaner
	{watt: 60, wattVar: 20, minDur: 5 * time.Minute, maxDur: 12 * time.Minute, rate: 0.2, gasLph: 2200, waterLph: 540},    // shower (boiler fan)
	{watt: 0, minDur: time.Minute, maxDur: 2 * time.Minute, rate: 1.5, waterLph: 360},                                     // toilet, tap
	{watt: 7400, wattVar: 3600, minDur: 2 * time.Hour, maxDur: 5 * time.Hour, rate: 0.05, threePhase: true, evOnly: true}, // car charger
}

// activity is how busy a household is by local hour: asleep, breakfast,
// out, dinner.
var activity = [24]float64{0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.4, 0.9, 0.8, 0.5, 0.5, 0.6,
	0.8, 0.6, 0.5, 0.5, 0.6, 0.9, 1, 1, 0.9, 0.7, 0.5, 0.2}

// monthTemp is the mean outdoor temperature of the Low Countries per month.
var monthTemp = [12]float64{3.5, 4, 7, 10, 14, 17, 19, 18.5, 15, 11, 7, 4}

func (md *model) init(m *Meter) {
	r := m.rng
	md.baseW = 60 + 140*r.Float64()
	switch {
	case m.cfg.SolarKWp > 0:
		md.kWp = m.cfg.SolarKWp
	case m.cfg.SolarKWp == 0 && r.IntN(2) == 0:
		md.kWp = 2 + 0.4*float64(r.IntN(20))
	}
	md.pv3 = m.lay.phases == 3 && md.kWp > 5
	md.hlc = 12 + 18*r.Float64()
	md.hasEV = m.lay.phases == 3 && r.IntN(4) == 0
	for i := range md.phaseOf {
		md.phaseOf[i] = r.IntN(m.lay.phases)
	}
	md.fridgeAt = r.Int64N(2700)
	for i := range md.gridV {
		md.gridV[i] = 229 + 4*r.Float64()
	}
	md.cloud = r.Float64()
	for i := range md.apps {
		md.apps[i].kind = -1
	}
}

// evaluate moves the household on by dt to t and sets m.now, the state the
// next telegram shows and the registers integrate until the next step.
func (md *model) evaluate(m *Meter, t time.Time, dt time.Duration) {
	r := m.rng
	lt := t.In(m.loc)
	hour := lt.Hour()
	act := activity[hour]
	if wd := lt.Weekday(); wd == time.Saturday || wd == time.Sunday {
		act = max(act, 0.6*activity[(hour+22)%24]) // a lazier, later morning
	}
	hours := dt.Hours()

	// Appliances: end those that are done, start new ones.
	for i := range md.apps {
		if md.apps[i].kind >= 0 && !md.apps[i].end.After(t) {
			md.apps[i] = running{kind: -1}
		}
	}
	for k := range kinds {
		kd := &kinds[k]
		if kd.evOnly && (!md.hasEV || hour < 17) {
			continue
		}
		if hours <= 0 || r.Float64() >= 1-math.Exp(-kd.rate*act*hours) {
			continue
		}
		slot := -1
		for i := range md.apps {
			if md.apps[i].kind == k {
				slot = -2 // already on
				break
			}
			if slot == -1 && md.apps[i].kind < 0 {
				slot = i
			}
		}
		if slot < 0 {
			continue
		}
		dur := kd.minDur + time.Duration(r.Int64N(int64(kd.maxDur-kd.minDur)+1))
		md.apps[slot] = running{kind: k, watt: kd.watt + kd.wattVar*(2*r.Float64()-1), end: t.Add(dur)}
	}

	// Load per phase.
	var load [3]float64
	phases := m.lay.phases
	for i := range phases {
		load[i] = md.baseW / float64(phases) * (0.95 + 0.1*r.Float64())
	}
	if (t.Unix()+md.fridgeAt)%2700 < 900 {
		load[0] += 90
	}
	sunUp := solarElevation(t, m.lay.solarLat, m.lay.solarLon)
	if sunUp < 0.1 {
		load[(hour/3)%phases] += 250 * act
	}
	var gas, water float64
	for _, a := range md.apps {
		if a.kind < 0 {
			continue
		}
		kd := &kinds[a.kind]
		if kd.threePhase && phases == 3 {
			for i := range 3 {
				load[i] += a.watt / 3
			}
		} else {
			load[md.phaseOf[a.kind]] += a.watt
		}
		gas += kd.gasLph
		water += kd.waterLph
	}

	// Solar production.
	var pv [3]float64
	if md.kWp > 0 {
		md.cloud += 0.15 * math.Sqrt(hours*60) * r.NormFloat64()
		md.cloud += (dayClearness(m.seed, lt) - md.cloud) * min(1, hours*2)
		md.cloud = min(max(md.cloud, 0.05), 1)
		prod := 0.0
		if sunUp > 0 {
			prod = md.kWp * 1000 * 0.85 * math.Pow(sunUp, 1.15) * (0.15 + 0.85*md.cloud)
		}
		if md.pv3 {
			for i := range 3 {
				pv[i] = prod / 3
			}
		} else {
			pv[0] = prod
		}
	}

	// Heating, outside the summer months: a set point of 19.5 °C while
	// people are up, 16 °C at night.
	month := int(lt.Month()) - 1
	day := float64(lt.Day()-1) / 31
	temp := monthTemp[month]*(1-day) + monthTemp[(month+1)%12]*day
	temp += 4*math.Sin(2*math.Pi*(float64(hour)-9)/24) + 3*(dayClearness(m.seed^1, lt)-0.5)
	setPoint := 16.0
	if hour >= 6 && hour < 22 {
		setPoint = 19.5
	}
	if need := setPoint - temp; need > 0 && monthTemp[month] < 15 {
		gas += md.hlc * need * (0.8 + 0.4*r.Float64())
	}

	// What the meter shows, in its display resolution.
	res := int64(m.lay.powerRes)
	var s state
	var net int64
	for i := range phases {
		p := int64(math.Round((load[i] - pv[i]) / float64(res)))
		net += p
		if p >= 0 {
			s.phTaken[i] = p * res
		} else {
			s.phInj[i] = -p * res
		}
		md.gridV[i] += 0.3*math.Sqrt(hours*60)*r.NormFloat64() + (231-md.gridV[i])*min(1, hours)
		md.gridV[i] = min(max(md.gridV[i], 222), 241)
		v := md.gridV[i] - 0.4*load[i]/1000 + 1.2*pv[i]/1000
		s.deciV[i] = int64(math.Round(v * 10))
		q := 0.25 * load[i] // reactive power of motors and power supplies
		pNet := load[i] - pv[i]
		s.centiA[i] = int64(math.Round(math.Sqrt(pNet*pNet+q*q) / v * 100))
	}
	if net >= 0 {
		s.takenW = net * res
	} else {
		s.injW = -net * res
	}
	s.gasLph = int64(gas)
	if m.cfg.Water {
		s.waterLph = int64(water)
	}
	m.now = s
}

// dayClearness is the day's weather, 0 overcast to 1 clear, the same for
// every call on one local day so that clouds drift around a daily mean.
func dayClearness(seed uint64, lt time.Time) float64 {
	y, mo, d := lt.Date()
	x := seed ^ uint64(y*10000+int(mo)*100+d)*0x9E3779B97F4A7C15
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return float64(x>>11) / (1 << 53)
}

// solarElevation returns the sine of the sun's elevation at t for a place
// at lat, lon degrees: declination by day of year, hour angle by UTC time
// and longitude (the equation of time is ignored).
func solarElevation(t time.Time, lat, lon float64) float64 {
	u := t.UTC()
	doy := float64(u.YearDay())
	decl := 23.44 * math.Pi / 180 * math.Sin(2*math.Pi*(284+doy)/365)
	hours := float64(u.Hour()) + float64(u.Minute())/60 + float64(u.Second())/3600
	ha := (hours + lon/15 - 12) * 15 * math.Pi / 180
	phi := lat * math.Pi / 180
	return math.Sin(phi)*math.Sin(decl) + math.Cos(phi)*math.Cos(decl)*math.Cos(ha)
}
