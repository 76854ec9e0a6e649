package spool

import (
	"testing"
	"time"
)

func TestEstimate(t *testing.T) {
	tests := []struct {
		gateways int
		cycle    time.Duration
		age      time.Duration
		want     int64
	}{
		{1, 5 * time.Second, 24 * time.Hour, 17280 * (68 + 64)},
		{1000, 5 * time.Second, 24 * time.Hour, 17280 * (68 + 64000)},
		{10000, 5 * time.Second, 24 * time.Hour, 17280 * (68 + 640000)},
		{5000, 4500 * time.Millisecond, 24 * time.Hour, 19200 * (68 + 320000)},
		{5000, 4500 * time.Millisecond, 10 * time.Second, 3 * (68 + 320000)}, // a started cycle counts
		{0, 5 * time.Second, time.Hour, 0},
	}
	for _, tc := range tests {
		got := EstimateBytes(tc.gateways, tc.cycle, tc.age)
		if got != tc.want {
			t.Errorf("EstimateBytes(%d, %v, %v) = %d, want %d", tc.gateways, tc.cycle, tc.age, got, tc.want)
		}
		if tc.want > 0 && tc.age >= time.Hour {
			if back := EstimateAge(tc.gateways, tc.cycle, got); back != tc.age {
				t.Errorf("EstimateAge(%d, %v, %d) = %v, want %v", tc.gateways, tc.cycle, got, back, tc.age)
			}
		}
	}
}
