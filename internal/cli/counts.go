package cli

import "strings"

// Threads checks a --threads (-t) value: 0 means one per CPU, a negative
// count is a usage error.
func Threads(n int) error {
	if n < 0 {
		return Usagef("--threads %d must be >= 0 (0: one per CPU)", n)
	}
	return nil
}

// AtLeast checks that the count given to flag is at least min: a usage
// error naming both otherwise.
func AtLeast(flag string, n, min int) error {
	if n < min {
		return Usagef("%s %d must be >= %d", flag, n, min)
	}
	return nil
}

// NoEmpty checks that a list flag (--nodes a,b) has no empty entries, as
// "," or "a,,b" give: a usage error naming the flag.
func NoEmpty(flag string, items []string) error {
	for i, s := range items {
		if strings.TrimSpace(s) == "" {
			return Usagef("%s %q: empty entry %d (give HOST:PORT,... without empty items)", flag, strings.Join(items, ","), i+1)
		}
	}
	return nil
}
