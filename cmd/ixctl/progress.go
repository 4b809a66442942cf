package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/inference-x/inference-x/internal/bytesize"
)

// progressMin is the output size from which the model tools draw a
// progress bar: smaller files are done before a bar would help.
const progressMin = 64 << 20

// newProgress returns a callback drawing a byte progress bar on w, or nil
// when disabled or the work is small. finish clears the line. The bar is
// drawn only when w is a terminal: into a file or a pipe it writes one
// line when the work starts and one when it ends, no carriage returns.
func newProgress(w io.Writer, desc string, disabled bool) (update func(done, total int64), finish func()) {
	if disabled {
		return nil, func() {}
	}
	if !isTerminal(w) {
		return plainProgress(w, desc)
	}
	var bar *progressbar.ProgressBar
	update = func(done, total int64) {
		if total < progressMin {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(desc),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
			)
		}
		_ = bar.Set64(done)
	}
	finish = func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return update, finish
}

// isTerminal reports whether w is a file open on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// plainProgress is newProgress for logs: "desc: 1.2 GiB to write" when
// work of progressMin or more starts, "desc: 1.2 GiB done in 3.4s" at
// the end.
func plainProgress(w io.Writer, desc string) (update func(done, total int64), finish func()) {
	var start time.Time
	var size, last int64
	update = func(done, total int64) {
		if total < progressMin {
			return
		}
		if size == 0 {
			start, size = time.Now(), total
			fmt.Fprintf(w, "%s: %s to write\n", desc, bytesize.Format(total))
		}
		last = done
	}
	finish = func() {
		if size == 0 {
			return
		}
		el := time.Since(start)
		if last < size {
			fmt.Fprintf(w, "%s: stopped at %s of %s after %s\n", desc, bytesize.Format(last), bytesize.Format(size), el.Round(time.Millisecond))
			return
		}
		fmt.Fprintf(w, "%s: %s done in %s (%.1f MB/s)\n", desc, bytesize.Format(size), el.Round(time.Millisecond), mbPerSec(size, el))
	}
	return update, finish
}

// typeCounts formats "Q4_K 193, Q6_K 33, F32 65", most frequent first.
func typeCounts(m map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var s []kv
	for k, n := range m {
		s = append(s, kv{k, n})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].n != s[j].n {
			return s[i].n > s[j].n
		}
		return s[i].k < s[j].k
	})
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %d", x.k, x.n)
	}
	return strings.Join(parts, ", ")
}

// mbPerSec is decimal megabytes per second.
func mbPerSec(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}
