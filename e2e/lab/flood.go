package lab

import (
	"fmt"
	"strconv"
	"strings"
)

// FloodOutcomes reads what `labtool flood` prints, one "COUNT\tOUTCOME"
// line per outcome, into a map by outcome; its "total" line is in the map
// too. Other lines are ignored.
func FloodOutcomes(out string) (map[string]int, error) {
	m := map[string]int{}
	for line := range strings.Lines(out) {
		c, o, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok {
			continue
		}
		v, err := strconv.Atoi(c)
		if err != nil {
			return nil, fmt.Errorf("labtool flood: line %q: count is not a number", line)
		}
		m[o] = v
	}
	return m, nil
}
