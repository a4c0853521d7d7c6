package placeholder

import (
	"net/netip"
	"net/url"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

func TestExpand(t *testing.T) {
	info := &clientinfo.Info{
		ClientID: "dev-1", Username: "a b&c", Peer: netip.MustParseAddrPort("127.0.0.1:4242"),
		Listener: "tcp:default", ProtocolVersion: 5,
		Cert:  &clientinfo.Cert{CN: "dev-1", DN: "CN=dev-1,O=x", SHA256: "ab"},
		Attrs: map[string]string{"tenant": "t1"},
	}
	v := Values{Info: info, Password: []byte("pw")}
	tests := []struct {
		tmpl   string
		escape func(string) string
		want   string
	}{
		{"plain", nil, "plain"},
		{"${clientid}", nil, "dev-1"},
		{"u=${username}&p=${password}", url.QueryEscape, "u=a+b%26c&p=pw"},
		{"${peerhost}:${peerport} ${listener} v${proto_ver}", nil, "127.0.0.1:4242 tcp:default v5"},
		{"${cert_common_name}|${cert_subject}|${cert_fingerprint}", nil, "dev-1|CN=dev-1,O=x|ab"},
		{"t/${client_attrs.tenant}/${client_attrs.none}", nil, "t/t1/"},
		{"$$ ${clientid}$", nil, "$$ dev-1$"},
	}
	for _, tc := range tests {
		tp, err := Parse(tc.tmpl, Options{})
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.tmpl, err)
		}
		if got := tp.Expand(v, tc.escape); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}

func TestExpandDoesNotReparseValues(t *testing.T) {
	tp := MustParse("${username}")
	info := &clientinfo.Info{Username: "${clientid}", ClientID: "secret"}
	if got := tp.Expand(Values{Info: info}, nil); got != "${clientid}" {
		t.Fatalf("a value was expanded again: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		tmpl string
		o    Options
	}{
		{"${nope}", Options{}},
		{"${clientid", Options{}},
		{"${client_attrs.}", Options{}},
		{"${password}", Options{NoPassword: true}},
		{"${}", Options{}},
	} {
		if _, err := Parse(tc.tmpl, tc.o); err == nil {
			t.Errorf("Parse(%q) accepted", tc.tmpl)
		}
	}
}

func TestSingleVar(t *testing.T) {
	if n, ok := MustParse("${username}").IsSingleVar(); !ok || n != "username" {
		t.Fatal("single var not recognised")
	}
	if _, ok := MustParse("u-${username}").IsSingleVar(); ok {
		t.Fatal("mixed template taken for a single var")
	}
}
