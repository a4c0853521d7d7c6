package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/backend/sqlrows"
	"github.com/rampart-mqtt/rampart/internal/backend/testsvc"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
	"github.com/rampart-mqtt/rampart/internal/tlsconf"
)

// TestTLS connects to servers that accept TCP connections only over TLS (pg_hba hostssl),
// one of them only with a client certificate its CA signed.
func TestTLS(t *testing.T) {
	pki := testsvc.NewPKI(t)
	tlsOnly := testsvc.StartPostgresTLS(t, pki)
	certOnly := testsvc.NewPostgres(t, testsvc.PostgresOptions{PKI: pki, RequireClientCert: true}).DSN
	// What the server says about the connection the query came in on.
	q, err := CompileQuery("SELECT ssl, coalesce(client_dn, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()", placeholder.Options{})
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tlsconf.ClientOptions{CACertFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	tests := []struct {
		name     string
		dsn      string
		tls      *tlsconf.ClientOptions
		wantErr  string
		clientDN string // in pg_stat_ssl when it works
	}{
		{"server verified with the CA", tlsOnly, &tlsconf.ClientOptions{CACertFile: pki.CAFile}, "", ""},
		{"client certificate presented though optional", tlsOnly, withCert, "", "rampart-test-client"},
		{"wrong CA", tlsOnly, &tlsconf.ClientOptions{CACertFile: pki.WrongCAFile}, "certificate", ""},
		{"wrong server name", tlsOnly, &tlsconf.ClientOptions{CACertFile: pki.CAFile, ServerName: "db.example"}, "certificate", ""},
		{"plain text refused by hostssl", tlsOnly, nil, "no pg_hba.conf entry", ""},
		{"client certificate required, none presented", certOnly, &tlsconf.ClientOptions{CACertFile: pki.CAFile}, "certificate", ""},
		{"client certificate required and presented", certOnly, withCert, "", "rampart-test-client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p, err := New(ctx, Config{DSN: tt.dsn, TLS: tt.tls})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rows, err := p.Query(ctx, q, placeholder.Values{}, 1)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Query: %v, want an error containing %q", err, tt.wantErr)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if len(rows.Values) != 1 {
				t.Fatalf("pg_stat_ssl: %+v", rows)
			}
			ssl, _ := sqlrows.Text(rows.Values[0][0])
			dn, _ := sqlrows.Text(rows.Values[0][1])
			if ssl != "true" || !strings.Contains(dn, tt.clientDN) || (tt.clientDN == "") != (dn == "") {
				t.Fatalf("pg_stat_ssl: ssl %q, client_dn %q; want ssl true, client_dn with %q", ssl, dn, tt.clientDN)
			}
		})
	}
}
