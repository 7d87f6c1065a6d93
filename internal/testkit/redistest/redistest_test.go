package redistest

import "testing"

func TestStartStopRestart(t *testing.T) {
	r := Start(t)
	if err := ping(r.Addr); err != nil {
		t.Fatalf("ping after Start = %v, want nil", err)
	}
	r.Stop()
	if err := ping(r.Addr); err == nil {
		t.Fatal("ping after Stop = nil, want an error")
	}
	r.Restart()
	if err := ping(r.Addr); err != nil {
		t.Fatalf("ping after Restart = %v, want nil", err)
	}
}
