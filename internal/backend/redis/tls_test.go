package redis

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	optional, _ := testsvc.StartRedisTLS(t, pki)
	required, _ := testsvc.StartRedisWith(t, testsvc.RedisOptions{PKI: pki, RequireClientCert: true})
	_, port, _ := net.SplitHostPort(optional)
	const anyError = "*"
	tests := []struct {
		name    string
		addr    string
		tls     *tlsconf.ClientOptions
		wantErr string // "" works; anyError: any error
	}{
		{"server verified with the CA", optional, &tlsconf.ClientOptions{CACertFile: pki.CAFile}, ""},
		{"server verified by name", net.JoinHostPort("localhost", port), &tlsconf.ClientOptions{CACertFile: pki.CAFile}, ""},
		{"wrong CA", optional, &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}, "certificate"},
		{"system roots", optional, &tlsconf.ClientOptions{}, "certificate"},
		{"wrong server name", optional, &tlsconf.ClientOptions{CACertFile: pki.CAFile, ServerName: "redis.example"}, "certificate"},
		{"plain text to the TLS port", optional, nil, anyError},
		{"client certificate required, none presented", required, &tlsconf.ClientOptions{CACertFile: pki.CAFile}, anyError},
		{"client certificate presented", required, &tlsconf.ClientOptions{CACertFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, ""},
		{"client certificate presented, optional", optional, &tlsconf.ClientOptions{CACertFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Addr: tt.addr, TLS: tt.tls, CommandTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			_, err = c.Do(ctx, "SET", "k", tt.name)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("SET: %v", err)
			case tt.wantErr == anyError && err == nil:
				t.Fatal("SET worked, want an error")
			case tt.wantErr != "" && tt.wantErr != anyError && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("SET: %v, want an error containing %q", err, tt.wantErr)
			case err != nil:
				t.Logf("refused as expected: %v", err)
				return
			}
			if v, err := c.Do(ctx, "GET", "k"); err != nil || v != tt.name {
				t.Fatalf("GET = %v, %v", v, err)
			}
		})
	}
}
