package diag

import (
	"strings"
	"unicode/utf8"
)

// Suggest returns the candidate closest to word, for a "did you mean"
// hint, or "" when none is close enough. Closeness is the edit distance
// (insertions, deletions, substitutions and swaps of two neighbouring
// characters) ignoring case, and a candidate is close enough when that
// distance is at most a third of its length (at least 1). A candidate equal to
// word is never suggested; of equally close candidates the first wins.
func Suggest(word string, candidates []string) string {
	best, bestDist := "", -1
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if c == word {
			continue
		}
		d := Distance(lw, strings.ToLower(c))
		limit := max(1, utf8.RuneCountInString(c)/3)
		if d > limit {
			continue
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// DidYouMean returns ` (did you mean "X"?)` for the closest candidate X
// according to [Suggest], or "" when there is none; append it to a message.
func DidYouMean(word string, candidates []string) string {
	if s := Suggest(word, candidates); s != "" {
		return ` (did you mean "` + s + `"?)`
	}
	return ""
}

// Distance returns the optimal string alignment distance between a and b:
// the number of single-character insertions, deletions, substitutions and
// swaps of two adjacent characters that turn a into b. It compares runes and
// is case-sensitive.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the dynamic programming table are enough for the swap.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
