package main

import (
	"testing"

	"github.com/rampart-mqtt/rampart/internal/config"
)

func TestBindsClientID(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    config.Authenticator
		want bool
	}{
		{"built-in by user name", config.Authenticator{Mechanism: "password_based", Backend: "built_in_database", UserIDType: "username"}, false},
		{"built-in by client id", config.Authenticator{Mechanism: "password_based", Backend: "built_in_database", UserIDType: "clientid"}, true},
		{"jwt without claims", config.Authenticator{Mechanism: "jwt"}, false},
		{"jwt verifying sub", config.Authenticator{Mechanism: "jwt", VerifyClaims: map[string]string{"sub": "${clientid}"}}, true},
		{"jwt verifying the user name only", config.Authenticator{Mechanism: "jwt", VerifyClaims: map[string]string{"sub": "${username}"}}, false},
		{"x509 without match", config.Authenticator{Mechanism: "x509", RequireClientIDMatch: "none"}, false},
		{"x509 matching cn", config.Authenticator{Mechanism: "x509", RequireClientIDMatch: "cn"}, true},
		{"cinfo on client id", config.Authenticator{Mechanism: "cinfo", Checks: []config.CinfoCheck{{IsMatch: []string{"clientid == cert_cn"}}}}, true},
		{"cinfo on user name", config.Authenticator{Mechanism: "cinfo", Checks: []config.CinfoCheck{{IsMatch: []string{`username == ""`}}}}, false},
		{"http with the client id", config.Authenticator{Mechanism: "password_based", Backend: "http", Body: map[string]string{"id": "${clientid}"}}, true},
		{"scram", config.Authenticator{Mechanism: "scram"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.a.Enable = true
			if got := bindsClientID(tc.a); got != tc.want {
				t.Fatalf("bindsClientID = %v, want %v", got, tc.want)
			}
			tc.a.Enable = false
			if bindsClientID(tc.a) {
				t.Fatal("a disabled authenticator binds nothing")
			}
		})
	}
}
