package authz

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/rampart-mqtt/rampart/internal/clientinfo"
)

// benchRules builds n rules shaped like a large deployment: half are per-user rules, a
// quarter per-device (client id) rules, a quarter global rules on site topics (some
// limited by address), then a final deny. With placeholders, four ${...} rules come first.
func benchRules(n int, placeholders bool) []Rule {
	var rules []Rule
	if placeholders {
		rules = append(rules,
			Rule{Permission: PermDeny, Topics: []string{"private/${clientid}/#"}},
			Rule{Permission: PermAllow, Action: ActPublish, Topics: []string{"devices/${clientid}/telemetry"}, QoS: []byte{0, 1}},
			Rule{Permission: PermAllow, Action: ActSubscribe, Topics: []string{"devices/${clientid}/commands"}},
			Rule{Permission: PermAllow, Topics: []string{"users/${username}/#"}},
		)
	}
	for i := range n {
		s := strconv.Itoa(i)
		switch i % 4 {
		case 0, 1:
			rules = append(rules, Rule{Permission: PermAllow, Who: &Who{Kind: WhoUsername, Value: "user-" + s},
				Topics: []string{"users/user-" + s + "/#"}})
		case 2:
			rules = append(rules, Rule{Permission: PermAllow, Who: &Who{Kind: WhoClientID, Value: "dev-" + s},
				Action: ActPublish, Topics: []string{"devices/dev-" + s + "/telemetry"}, QoS: []byte{0, 1}})
		default:
			r := Rule{Permission: PermAllow, Action: ActSubscribe, Topics: []string{"sites/site-" + s + "/+/status"}}
			if i%8 == 7 {
				r = Rule{Permission: PermDeny, Who: &Who{Kind: WhoIPAddr, Value: "10.0.0.0/8"}, Topics: []string{"sites/site-" + s + "/secret/#"}}
			}
			rules = append(rules, r)
		}
	}
	return append(rules, Rule{Permission: PermDeny})
}

func benchClient(n int) *clientinfo.Info {
	i := n / 2 &^ 7 // a user rule in the middle of the list
	return &clientinfo.Info{
		Username: "user-" + strconv.Itoa(i),
		ClientID: "dev-" + strconv.Itoa(i+2),
		Peer:     netip.MustParseAddrPort("192.0.2.10:40000"),
	}
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 10_000, 1_000_000} {
		for _, ph := range []bool{false, true} {
			rs, err := Compile(benchRules(n, ph))
			if err != nil {
				b.Fatal(err)
			}
			info := benchClient(n)
			c := rs.ForClient(info)
			site := strconv.Itoa(n/2&^7 + 3)
			cases := []struct {
				name  string
				a     Action
				topic string
				want  Decision
			}{
				{"user-bucket", Action{Kind: ActPublish}, "users/" + info.Username + "/inbox", Allow},
				{"client-bucket", Action{Kind: ActPublish, QoS: 1}, "devices/" + info.ClientID + "/telemetry", Allow},
				{"global-trie", Action{Kind: ActSubscribe}, "sites/site-" + site + "/+/status", Allow},
				{"miss", Action{Kind: ActPublish}, "other/a/b/c", Deny},
				{"subscribe-#", Action{Kind: ActSubscribe}, "#", Deny},
			}
			for _, tc := range cases {
				b.Run(fmt.Sprintf("rules=%d/placeholders=%v/%s", n, ph, tc.name), func(b *testing.B) {
					if got := c.Decide(tc.a, tc.topic); got != tc.want {
						b.Fatalf("got %v, want %v", got, tc.want)
					}
					b.ReportAllocs()
					for b.Loop() {
						c.Decide(tc.a, tc.topic)
					}
				})
			}
		}
	}
}

func BenchmarkForClient(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		for _, ph := range []bool{false, true} {
			rs, err := Compile(benchRules(n, ph))
			if err != nil {
				b.Fatal(err)
			}
			info := benchClient(n)
			b.Run(fmt.Sprintf("rules=%d/placeholders=%v", n, ph), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					rs.ForClient(info)
				}
			})
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10_000} {
		rules := benchRules(n, true)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(rules); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
