package config

import "strings"

// suggest returns the known name closest to got (ignoring case), or "" when
// none is close enough: one edit for names up to four characters, two for
// longer ones (an edit is an insertion, deletion, substitution or swap of
// neighbours). Ties go to the earlier name.
func suggest(got string, known []string) string {
	limit := 1
	if len([]rune(got)) > 4 {
		limit = 2
	}
	best, bestDist := "", limit+1
	g := strings.ToLower(got)
	for _, k := range known {
		if d := editDistance(g, strings.ToLower(k), bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b in
// runes: Levenshtein plus transposition of neighbours. Any result at or
// above cap is returned as cap, so a long key costs little.
func editDistance(a, b string, cap int) int {
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d >= cap || -d >= cap {
		return cap
	}
	// rows i-2, i-1 and i of the dynamic programming table.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= cap {
			return cap
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(rb)], cap)
}
