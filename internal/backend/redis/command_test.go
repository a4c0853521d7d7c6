package redis

import (
	"slices"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/placeholder"
)

func TestCommandArgs(t *testing.T) {
	cmd, err := ParseCommand("  hmget   mqtt_user:${username}:${clientid}  password_hash\tsalt ", []string{"HMGET"}, placeholder.Options{NoPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.String(); got != "HMGET mqtt_user:${username}:${clientid} password_hash salt" {
		t.Fatalf("String() = %q", got)
	}
	tests := []struct {
		name     string
		user, id string
		want     []string
	}{
		{"plain", "alice", "c1", []string{"HMGET", "mqtt_user:alice:c1", "password_hash", "salt"}},
		{"spaces and CRLF stay in one argument", "a b\r\nFLUSHALL", "c 1", []string{"HMGET", "mqtt_user:a b\r\nFLUSHALL:c 1", "password_hash", "salt"}},
		{"placeholder text stays literal", "${clientid}", "c1", []string{"HMGET", "mqtt_user:${clientid}:c1", "password_hash", "salt"}},
		{"empty user name", "", "c1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, ok := cmd.Args(placeholder.Values{Info: &clientinfo.Info{Username: tt.user, ClientID: tt.id}})
			if ok != (tt.want != nil) || !slices.Equal(args, tt.want) {
				t.Fatalf("Args = %q, %v; want %q", args, ok, tt.want)
			}
		})
	}
}
