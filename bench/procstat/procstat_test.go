package procstat

import (
	"os"
	"testing"
)

func TestStatTicks(t *testing.T) {
	tests := []struct {
		name, in string
		want     float64
		wantErr  bool
	}{
		{"plain", "42 (squid) S 1 42 42 0 -1 4194560 100 0 0 0 700 55 0 0 20 0 1 0 5 0 0", 755, false},
		{"name with spaces and paren", "7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0", 7, false},
		{"short", "7 (x) R 1 2", 0, true},
		{"no name", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statTicks(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("statTicks(%q) = %v, %v, want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStatusRSS(t *testing.T) {
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{"present", "Name:\tx\nVmPeak:\t 10 kB\nVmRSS:\t    2048 kB\nThreads: 1\n", 2048 << 10, false},
		{"missing (kernel thread)", "Name:\tkthreadd\nThreads: 1\n", 0, true},
		{"bad unit", "VmRSS:\t 1 MB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statusRSS(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("statusRSS(%q) = %d, %v, want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOwnProcess(t *testing.T) {
	pid := os.Getpid()
	if rss, err := RSS([]int{pid}); err != nil || rss <= 0 {
		t.Errorf("RSS(self) = %d, %v, want > 0", rss, err)
	}
	if _, err := CPUSeconds([]int{pid}, 100); err != nil {
		t.Errorf("CPUSeconds(self) error = %v", err)
	}
	if n, err := FDCount([]int{pid}); err != nil || n < 3 {
		t.Errorf("FDCount(self) = %d, %v, want >= 3", n, err)
	}
	if _, err := ParsePIDs("1,x"); err == nil {
		t.Error("ParsePIDs(1,x): no error")
	}
}
