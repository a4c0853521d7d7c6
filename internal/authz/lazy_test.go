package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

func TestLazyRules(t *testing.T) {
	rs, err := Compile([]Rule{{Permission: PermAllow, Action: ActAll, Topics: []string{"t/${clientid}"}}})
	if err != nil {
		t.Fatal(err)
	}
	reads, failures := 0, 0
	var lastErr error
	l := NewLazyRules(&clientinfo.Info{ClientID: "c1"},
		func(_ context.Context, info *clientinfo.Info) (*ClientRules, error) {
			reads++
			if reads == 1 {
				return nil, errors.New("down")
			}
			return rs.ForClient(info), nil
		},
		func(info *clientinfo.Info, err error) Decision {
			if info.ClientID != "c1" {
				t.Errorf("fail got client %q", info.ClientID)
			}
			failures++
			lastErr = err
			return Deny
		})
	ctx := context.Background()
	pub := Action{Kind: ActPublish}
	if d := l.Authorize(ctx, pub, "t/c1"); d != Deny || failures != 1 {
		t.Fatalf("first question: %v after %d failures, want Deny after 1", d, failures)
	}
	for range 2 {
		if d := l.Authorize(ctx, pub, "t/c1"); d != Allow {
			t.Fatalf("after the retry: %v, want Allow", d)
		}
	}
	if reads != 2 {
		t.Errorf("%d reads, want 2 (one failed, one kept)", reads)
	}

	// A question that cannot wait for the lock fails with its context's error.
	l.lock <- struct{}{}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if d := l.Authorize(done, pub, "t/c1"); d != Deny || !errors.Is(lastErr, context.Canceled) {
		t.Errorf("cancelled wait: %v, %v", d, lastErr)
	}
	<-l.lock
}
