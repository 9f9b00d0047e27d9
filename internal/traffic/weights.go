package traffic

import "math"

// MaxWeight is the highest server weight haproxy takes.
const MaxWeight = 256

// DefaultWeight is a server's weight when no share is being steered.
const DefaultWeight = 100

// ShareWeights turns a share of p percent of the requests for n servers
// (the canary, or a blue/green replacement fleet) against m others (the
// stable servers) into haproxy weights (0 to 256), so that
// n×fleet / (n×fleet + m×others) ≈ p / 100.
//
// The others keep DefaultWeight when the fleet's weight fits in 256;
// otherwise the fleet gets 256 and the others are lowered (never below 1
// while p < 100, so they still take their share). p <= 0 gives the fleet 0
// and p >= 100 gives the others 0; with m = 0 the fleet takes everything
// whatever p is, and with n = 0 the others do.
func ShareWeights(p, n, m int) (fleet, others int) {
	switch {
	case n <= 0:
		return 0, DefaultWeight
	case m <= 0:
		return DefaultWeight, 0
	case p <= 0:
		return 0, DefaultWeight
	case p >= 100:
		return DefaultWeight, 0
	}
	// fleet = p×m×100 / ((100−p)×n)
	f := float64(p) * float64(m) * DefaultWeight / (float64(100-p) * float64(n))
	if f <= MaxWeight {
		return max(1, int(math.Round(f))), DefaultWeight
	}
	// Cap the fleet at 256 and lower the others instead:
	// others = 256×n×(100−p) / (p×m).
	o := MaxWeight * float64(n) * float64(100-p) / (float64(p) * float64(m))
	return MaxWeight, max(1, int(math.Round(o)))
}

// ShareOf is the share of requests, in percent, that n servers of weight
// fleet get against m servers of weight others (what ShareWeights aims at).
func ShareOf(fleet, n, others, m int) float64 {
	tot := float64(fleet*n + others*m)
	if tot == 0 {
		return 0
	}
	return 100 * float64(fleet*n) / tot
}

// WeightMap is ShareWeights as server name → weight: every server of fleet
// gets the fleet's weight and every server of others the others'.
func WeightMap(p int, fleet, others []string) map[string]int {
	fw, ow := ShareWeights(p, len(fleet), len(others))
	out := make(map[string]int, len(fleet)+len(others))
	for _, s := range others {
		out[s] = ow
	}
	for _, s := range fleet {
		out[s] = fw
	}
	return out
}
