package x509auth

import (
	"context"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/authn"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		match string
		ok    bool
	}{
		{"", true}, {"none", true}, {"cn", true}, {"dn", true}, {"san_dns", true}, {"san_uri", true},
		{"CN", false}, {"crt_sha256", false}, {"cn ", false}, {"subject", false},
	}
	for _, tt := range tests {
		t.Run(tt.match, func(t *testing.T) {
			cfg := Config{RequireClientIDMatch: tt.match}
			err := cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if _, nerr := New(cfg); (nerr == nil) != tt.ok {
				t.Fatalf("New() = %v, want ok=%v", nerr, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "require_clientid_match") {
				t.Fatalf("error %q does not name the key", err)
			}
		})
	}
}

func cert() *clientinfo.Cert {
	return &clientinfo.Cert{
		CN:       "dev-1",
		DN:       "CN=dev-1,O=Acme",
		DNSNames: []string{"dev-1.example.com", "alias.example.com"},
		URIs:     []string{"spiffe://example.com/dev-1"},
		SHA256:   "00ff",
		Issuer:   "CN=Acme CA",
		Serial:   "7",
	}
}

func TestAuthenticate(t *testing.T) {
	noCN := cert()
	noCN.CN = ""
	noSAN := cert()
	noSAN.DNSNames = nil
	emptySAN := cert()
	emptySAN.DNSNames = []string{""}

	tests := []struct {
		name     string
		match    string
		cert     *clientinfo.Cert
		clientID string
		want     authn.Outcome
	}{
		{"no certificate", "none", nil, "dev-1", authn.Ignore},
		{"no certificate, match required", "cn", nil, "dev-1", authn.Ignore},
		{"certificate alone", "", cert(), "anything", authn.Allow},
		{"certificate alone, explicit none", "none", cert(), "", authn.Allow},
		{"cn match", "cn", cert(), "dev-1", authn.Allow},
		{"cn mismatch", "cn", cert(), "dev-2", authn.Deny},
		{"cn differs in case", "cn", cert(), "DEV-1", authn.Deny},
		{"cn with trailing space", "cn", cert(), "dev-1 ", authn.Deny},
		{"cn prefix only", "cn", cert(), "dev-", authn.Deny},
		{"cn with NUL suffix", "cn", cert(), "dev-1\x00", authn.Deny},
		{"empty cn, empty client id", "cn", noCN, "", authn.Deny},
		{"empty cn, some client id", "cn", noCN, "dev-1", authn.Deny},
		{"dn match", "dn", cert(), "CN=dev-1,O=Acme", authn.Allow},
		{"dn mismatch", "dn", cert(), "dev-1", authn.Deny},
		{"san_dns first", "san_dns", cert(), "dev-1.example.com", authn.Allow},
		{"san_dns second", "san_dns", cert(), "alias.example.com", authn.Allow},
		{"san_dns mismatch", "san_dns", cert(), "dev-1", authn.Deny},
		{"san_dns absent", "san_dns", noSAN, "", authn.Deny},
		{"san_dns empty name, empty client id", "san_dns", emptySAN, "", authn.Deny},
		{"san_uri match", "san_uri", cert(), "spiffe://example.com/dev-1", authn.Allow},
		{"san_uri mismatch", "san_uri", cert(), "spiffe://example.com/dev-2", authn.Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(Config{RequireClientIDMatch: tt.match})
			if err != nil {
				t.Fatal(err)
			}
			info := &clientinfo.Info{ClientID: tt.clientID, Cert: tt.cert}
			res := a.Authenticate(context.Background(), info, &authn.Credentials{Username: "ignored", Password: []byte("ignored")})
			if res.Outcome != tt.want {
				t.Fatalf("outcome %v (%s), want %v", res.Outcome, res.Detail, tt.want)
			}
			if res.Outcome == authn.Deny && res.DenyReason() != packet.NotAuthorized {
				t.Fatalf("deny reason %v, want NotAuthorized", res.DenyReason())
			}
			if res.Outcome == authn.Allow && (res.Superuser || res.ACL != nil) {
				t.Fatalf("allow grants more than authentication: %+v", res)
			}
			if strings.Contains(res.Detail, "ignored") {
				t.Fatalf("detail %q shows credentials", res.Detail)
			}
		})
	}
}

func TestDenyDetail(t *testing.T) {
	a, err := New(Config{RequireClientIDMatch: "cn"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		clientID string
		want     []string // substrings of the detail
		maxLen   int
	}{
		{"short", "dev-2", []string{`"dev-2"`, `cn "dev-1"`}, 200},
		{"long client id is truncated", strings.Repeat("A", 65535), []string{"(65535 bytes)"}, 250},
		{"forged log line is escaped", "x\nlevel=ERROR msg=forged", []string{`\n`}, 200},
		{"multibyte cut on a rune boundary", strings.Repeat("é", 100), []string{"(200 bytes)"}, 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: tt.clientID, Cert: cert()}, nil)
			if res.Outcome != authn.Deny {
				t.Fatalf("outcome %v, want Deny", res.Outcome)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.Detail, w) {
					t.Errorf("detail %q does not contain %q", res.Detail, w)
				}
			}
			if len(res.Detail) > tt.maxLen {
				t.Errorf("detail is %d bytes", len(res.Detail))
			}
			if strings.ContainsAny(res.Detail, "\n\r") || strings.Contains(res.Detail, "\uFFFD") {
				t.Errorf("detail %q holds a raw newline or a broken rune", res.Detail)
			}
		})
	}
}

func TestDoesNotModifyCertificate(t *testing.T) {
	c := cert()
	c.DNSNames = []string{"", "dev-1.example.com"}
	a, err := New(Config{RequireClientIDMatch: "san_dns"})
	if err != nil {
		t.Fatal(err)
	}
	res := a.Authenticate(context.Background(), &clientinfo.Info{ClientID: "dev-1.example.com", Cert: c}, nil)
	if res.Outcome != authn.Allow {
		t.Fatalf("outcome %v, want Allow", res.Outcome)
	}
	if c.DNSNames[0] != "" || c.DNSNames[1] != "dev-1.example.com" || len(c.DNSNames) != 2 {
		t.Fatalf("certificate names changed: %q", c.DNSNames)
	}
}

func TestDoneContextDenies(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := a.Authenticate(ctx, &clientinfo.Info{Cert: cert()}, nil); res.Outcome != authn.Deny {
		t.Fatalf("outcome %v, want Deny", res.Outcome)
	}
}

func TestName(t *testing.T) {
	a, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name() != "x509" {
		t.Fatalf("Name() = %q", a.Name())
	}
}
