package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one scenario's figures.
type row struct {
	Scenario      string        `json:"scenario"`
	Backend       string        `json:"backend"`
	Concurrency   int           `json:"concurrency"`
	Upstream      time.Duration `json:"upstream_latency_ns"`
	Rate          float64       `json:"offered_rps"`
	Proxy         summary       `json:"proxy"`
	Direct        *summary      `json:"direct,omitempty"` // the same calls straight to the stand-in
	AddedP50      time.Duration `json:"added_p50_ns"`
	AddedP99      time.Duration `json:"added_p99_ns"`
	UpstreamConns int64         `json:"upstream_connections_opened"`
	CPUPer1000    float64       `json:"cpu_seconds_per_1000"`
	PeakRSSMB     float64       `json:"peak_rss_mb"`
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond && d > -time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	default:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
}

// table formats rows as one aligned text table.
func table(rows []row) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tbackend\tconc\tupstream\toffered/s\tdone/s\tp50\tp90\tp99\tmax\terrors\tadded p50\tadded p99\tupstream conns\tcpu s/1k\tpeak RSS MB\t")
	for _, r := range rows {
		added50, added99 := "-", "-"
		if r.Direct != nil {
			added50, added99 = ms(r.AddedP50), ms(r.AddedP99)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%.2f\t%.1f\t\n",
			r.Scenario, r.Backend, r.Concurrency, ms(r.Upstream), r.Rate, r.Proxy.Throughput,
			ms(r.Proxy.P50), ms(r.Proxy.P90), ms(r.Proxy.P99), ms(r.Proxy.Max), r.Proxy.Errors,
			added50, added99, r.UpstreamConns, r.CPUPer1000, r.PeakRSSMB)
	}
	w.Flush()
	return b.String()
}
