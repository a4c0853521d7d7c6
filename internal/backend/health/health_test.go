package health

import (
	"errors"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New("db", 100*time.Millisecond, 400*time.Millisecond)
	s.now = func() time.Time { return now }
	if err := s.Allow(); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		fail    bool // record a failure after this step's Allow
		allowed bool
	}{
		{"first failure", 0, true, true},
		{"inside 100ms back-off", 50 * time.Millisecond, false, false},
		{"probe after back-off", 60 * time.Millisecond, true, true},
		{"inside doubled 200ms back-off", 150 * time.Millisecond, false, false},
		{"probe after 200ms", 60 * time.Millisecond, true, true},
		{"inside 400ms", 399 * time.Millisecond, false, false},
		{"probe after 400ms", 2 * time.Millisecond, true, true},
		{"ceiling stays 400ms", 399 * time.Millisecond, false, false},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		err := s.Allow()
		if (err == nil) != st.allowed {
			t.Fatalf("%s: Allow = %v, want allowed=%v", st.name, err, st.allowed)
		}
		if err != nil && !errors.Is(err, ErrBackoff) {
			t.Fatalf("%s: %v does not wrap ErrBackoff", st.name, err)
		}
		if st.fail {
			s.Failure(errors.New("connection refused"))
		}
	}
	if snap := s.Snapshot(); snap.Up || snap.Failures != 4 || snap.LastErr != "connection refused" {
		t.Fatalf("snapshot %+v", snap)
	}
	now = now.Add(time.Second)
	if err := s.Allow(); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if err := s.Allow(); err == nil {
		t.Fatal("a second question while the probe is out was let through")
	}
	s.Abandon()
	if err := s.Allow(); err != nil {
		t.Fatalf("abandoned probe still holds: %v", err)
	}
	now = now.Add(probeWait + time.Millisecond)
	if err := s.Allow(); err != nil {
		t.Fatalf("a probe whose outcome was never recorded still holds after %v: %v", probeWait, err)
	}
	s.Success()
	if err := s.Allow(); err != nil {
		t.Fatalf("after success: %v", err)
	}
	if snap := s.Snapshot(); !snap.Up || snap.Failures != 0 || snap.LastErr != "" {
		t.Fatalf("snapshot after success %+v", snap)
	}
}

func TestOnChange(t *testing.T) {
	s := New("db", time.Millisecond, time.Millisecond)
	var got []bool
	s.OnChange(func(snap Snapshot) { got = append(got, snap.Up) })
	s.Success()                      // up already: no change
	s.Failure(errors.New("refused")) // down
	s.Failure(errors.New("refused")) // still down: no change
	s.Abandon()                      // says nothing
	s.Success()                      // back up
	s.Success()                      // still up
	if want := []bool{false, true}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("changes reported %v, want %v", got, want)
	}
}
