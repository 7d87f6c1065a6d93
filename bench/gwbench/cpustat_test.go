package main

import (
	"testing"

	"slices"
)

func TestParseCPULine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       cpuTimes
		ok         bool
	}{
		{name: "cpu line", line: "cpu1 10 1 5 100 4 2 3 0 7 0", want: cpuTimes{busy: 21, total: 125}, ok: true},
		{name: "aggregate", line: "cpu 10 1 5 100 4 2 3 0 0 0"},
		{name: "other", line: "intr 1 2 3 4 5 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := parseCPULine(tc.line)
			if err != nil || ok != tc.ok || got != tc.want {
				t.Errorf("parseCPULine(%q) = %+v, %v, %v; want %+v, %v, nil", tc.line, got, ok, err, tc.want, tc.ok)
			}
		})
	}
	if got, want := busyPercent([]cpuTimes{{10, 100}}, []cpuTimes{{60, 200}}), []float64{50}; !slices.Equal(got, want) {
		t.Errorf("busyPercent = %v, want %v", got, want)
	}
}
