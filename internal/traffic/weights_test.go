package traffic

import (
	"math"
	"testing"
)

func TestShareWeights(t *testing.T) {
	cases := []struct {
		p, n, m       int
		fleet, others int
	}{
		{10, 2, 4, 22, 100},
		{50, 2, 4, 200, 100},
		{90, 2, 4, 256, 14},
		{100, 2, 4, 100, 0},
		{0, 2, 4, 0, 100},
		{10, 1, 1, 11, 100},
		{50, 1, 1, 100, 100},
		{90, 1, 1, 256, 28},
		{99, 1, 9, 256, 1},
		{1, 4, 1, 1, 100}, // 0.25 rounds up to 1: a canary always gets some traffic
		{30, 1, 0, 100, 0},
		{30, 0, 3, 0, 100},
	}
	for _, c := range cases {
		f, o := ShareWeights(c.p, c.n, c.m)
		if f != c.fleet || o != c.others {
			t.Errorf("ShareWeights(%d%%, n=%d, m=%d) = %d, %d; want %d, %d", c.p, c.n, c.m, f, o, c.fleet, c.others)
		}
		if f < 0 || f > MaxWeight || o < 0 || o > MaxWeight {
			t.Errorf("ShareWeights(%d%%, n=%d, m=%d) = %d, %d: outside 0..256", c.p, c.n, c.m, f, o)
		}
	}
}

// The weights give the share asked for, within one percentage point, for
// every share and fleet size that weights can express that closely.
func TestShareWeightsAccuracy(t *testing.T) {
	for _, nm := range [][2]int{{1, 1}, {1, 3}, {2, 4}, {3, 7}, {1, 9}} {
		n, m := nm[0], nm[1]
		for p := 1; p <= 99; p++ {
			f, o := ShareWeights(p, n, m)
			if o < 1 || f < 1 {
				t.Fatalf("p=%d n=%d m=%d: weights %d/%d leave a side without traffic", p, n, m, f, o)
			}
			got := ShareOf(f, n, o, m)
			// Integer weights bound the precision: allow half a weight
			// unit of the others' (the lowered side) on top of 1 point.
			half := 100*float64(f*n)/(float64(f*n)+(float64(o)-0.5)*float64(m)) - got
			tol := 1 + math.Abs(half)
			if math.Abs(got-float64(p)) > tol {
				t.Errorf("p=%d n=%d m=%d: weights %d/%d give %.2f%%", p, n, m, f, o, got)
			}
		}
	}
}

func TestWeightMap(t *testing.T) {
	w := WeightMap(90, []string{"c1", "c2"}, []string{"s1", "s2", "s3", "s4"})
	want := map[string]int{"c1": 256, "c2": 256, "s1": 14, "s2": 14, "s3": 14, "s4": 14}
	if len(w) != len(want) {
		t.Fatalf("WeightMap = %v, want %v", w, want)
	}
	for k, v := range want {
		if w[k] != v {
			t.Errorf("WeightMap[%s] = %d, want %d", k, w[k], v)
		}
	}
	if got := ShareOf(w["c1"], 2, w["s1"], 4); math.Abs(got-90) > 1 {
		t.Errorf("share %.2f%%, want 90%%", got)
	}
}
