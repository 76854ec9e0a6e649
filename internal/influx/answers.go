package influx

import (
	"sort"
	"time"

	"github.com/p1logger/p1logger/rollup"
)

// The builders below put both dialects' rows into the same answers: one
// entry per rollup.Series (series that differ only in tags the rollup
// ignores are merged), sorted, so that equal data gives equal answers
// whichever language read it.

type summaryBuilder struct {
	m map[rollup.Series]*rollup.SeriesSummary
}

func (b *summaryBuilder) get(s rollup.Series) *rollup.SeriesSummary {
	if b.m == nil {
		b.m = map[rollup.Series]*rollup.SeriesSummary{}
	}
	x := b.m[s]
	if x == nil {
		x = &rollup.SeriesSummary{Series: s}
		b.m[s] = x
	}
	return x
}

func (b *summaryBuilder) first(s rollup.Series, p rollup.Point) {
	x := b.get(s)
	if x.First.At.IsZero() || p.At.Before(x.First.At) {
		x.First = p
	}
}

func (b *summaryBuilder) last(s rollup.Series, p rollup.Point) {
	x := b.get(s)
	if x.Last.At.IsZero() || p.At.After(x.Last.At) {
		x.Last = p
	}
}

func (b *summaryBuilder) falls(s rollup.Series, falls bool) {
	x := b.get(s)
	x.Falls = x.Falls || falls
}

// list returns the summaries that have both ends, sorted.
func (b *summaryBuilder) list() []rollup.SeriesSummary {
	out := make([]rollup.SeriesSummary, 0, len(b.m))
	for _, x := range b.m {
		if !x.First.At.IsZero() && !x.Last.At.IsZero() {
			out = append(out, *x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return seriesLess(out[i].Series, out[j].Series) })
	return out
}

type runKey struct {
	s  rollup.Series
	id int64
}

type runBuilder struct {
	m map[runKey]*rollup.Run
}

func (b *runBuilder) get(s rollup.Series, id int64) *rollup.Run {
	if b.m == nil {
		b.m = map[runKey]*rollup.Run{}
	}
	k := runKey{s, id}
	x := b.m[k]
	if x == nil {
		x = &rollup.Run{Series: s, ID: id}
		b.m[k] = x
	}
	return x
}

// list returns the runs that have both ends, sorted by series and first
// reading, each run's drops in time order.
func (b *runBuilder) list() []rollup.Run {
	out := make([]rollup.Run, 0, len(b.m))
	for _, x := range b.m {
		if x.First.At.IsZero() || x.Last.At.IsZero() {
			continue
		}
		sortDrops(x.Drops)
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Series != out[j].Series {
			return seriesLess(out[i].Series, out[j].Series)
		}
		return out[i].First.At.Before(out[j].First.At)
	})
	return out
}

type lastBuilder struct {
	m map[rollup.Series]rollup.Point
}

func (b *lastBuilder) add(s rollup.Series, p rollup.Point) {
	if b.m == nil {
		b.m = map[rollup.Series]rollup.Point{}
	}
	if x, ok := b.m[s]; !ok || p.At.After(x.At) {
		b.m[s] = p
	}
}

func (b *lastBuilder) list() []rollup.Reading {
	out := make([]rollup.Reading, 0, len(b.m))
	for s, p := range b.m {
		out = append(out, rollup.Reading{Series: s, Point: p})
	}
	sort.Slice(out, func(i, j int) bool { return seriesLess(out[i].Series, out[j].Series) })
	return out
}

func sortDrops(list []rollup.Drop) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Series != list[j].Series {
			return seriesLess(list[i].Series, list[j].Series)
		}
		return list[i].At.Before(list[j].At)
	})
}

func seriesLess(a, b rollup.Series) bool {
	switch {
	case a.Gateway != b.Gateway:
		return a.Gateway < b.Gateway
	case a.Measurement != b.Measurement:
		return a.Measurement < b.Measurement
	case a.Field != b.Field:
		return a.Field < b.Field
	case a.Channel != b.Channel:
		return a.Channel < b.Channel
	}
	return a.Meter < b.Meter
}

// unixNano reads an InfluxQL epoch=ns time.
func unixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }
