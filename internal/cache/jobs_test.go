package cache

import (
	"context"
	"testing"
)

// TestJobsStartShutdown: Shutdown stops the quota loop and waits for it;
// without a quota the jobs end at once and Shutdown has nothing to wait for.
func TestJobsStartShutdown(t *testing.T) {
	for _, tt := range []struct {
		name  string
		quota Size
	}{
		{name: "quota loop running", quota: 1 << 30},
		{name: "no quota", quota: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t, newFake(), nil)
			s.quota = tt.quota
			j := s.Jobs()
			if err := j.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown before Start = %v, want nil", err)
			}
			if err := j.Start(context.Background()); err != nil {
				t.Fatalf("Start = %v, want nil", err)
			}
			if err := j.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown = %v, want nil", err)
			}
			if j.Failed() != nil {
				t.Errorf("Failed() = non-nil channel, want nil (the jobs never fail)")
			}
		})
	}
}
