package packet

import (
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// Random valid packets for the round-trip and differential tests.
//
// randPacket builds a packet that a conforming peer could send and that this codec must
// carry unchanged: encoding it and decoding the bytes gives a reflect.DeepEqual value, and
// encoding that value again gives the same bytes. To make DeepEqual hold, the generator
// produces the normal form the decoder returns:
//
//   - a binary field that is present is a non-nil slice, []byte{} when empty (CONNECT
//     password, will payload, correlation data, authentication data, PUBLISH payload);
//   - a binary field that is absent is nil;
//   - Properties.User and Properties.SubscriptionIDs are nil when empty, and their
//     presence is never marked with Set (it is the length of the slice);
//   - every other property is marked present with Set exactly when it is generated;
//   - CONNECT carries its protocol name and level, as Decode fills them in.
//
// Helpers in this file are prefixed rp so that they do not collide with the other test files
// of the package.

// rpSeed is the base seed of every randomized test of the package's round-trip and
// differential tests. Each subtest derives its own stream from it and its name, so a
// failure is reproduced by running the same subtest with the seed it prints.
var rpSeed = flag.Uint64("randpacket.seed", 0x5eed_2026_0001, "base seed of the random packet tests")

// rpRand returns the deterministic random source of subtest t and the seed it derives from.
func rpRand(t testing.TB) (*rand.Rand, uint64) {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return rand.New(rand.NewPCG(*rpSeed, h.Sum64())), *rpSeed
}

// rpFailf reports a failure of subtest t with what is needed to reproduce it.
func rpFailf(t testing.TB, seed uint64, i int, p Packet, format string, args ...any) {
	t.Helper()
	t.Fatalf("%s (packet #%d, rerun with -run '^%s$' -randpacket.seed=%d)\npacket: %s",
		fmt.Sprintf(format, args...), i, t.Name(), seed, rpDump(p))
}

// rpDump prints a packet with its pointers followed, for failure messages, cut to a
// readable length.
func rpDump(p Packet) string {
	var s string
	switch p := p.(type) {
	case *Connect:
		s = fmt.Sprintf("%+v", *p)
		if p.Will != nil {
			s += fmt.Sprintf(" will=%+v", *p.Will)
		}
	case nil:
		s = "<nil>"
	default:
		s = fmt.Sprintf("%T%+v", p, p)
	}
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// rpGen generates packets. The zero value generates every valid packet; the fields restrict
// it to the common ground of another implementation (see paho_test.go).
type rpGen struct {
	// nonEmptyProps: string and binary properties are never present and empty.
	nonEmptyProps bool
	// singlePublishSubID: a PUBLISH carries at most one subscription identifier.
	singlePublishSubID bool
	// willPropsDelayUser: will properties are only the will delay interval and user
	// properties.
	willPropsDelayUser bool
	// noEmptyDisconnect: a DISCONNECT is never the empty body (success, no properties).
	noEmptyDisconnect bool
}

// randPacket returns a random valid packet of type t for protocol version v. AUTH exists
// only in MQTT 5; asking for it in another version panics.
func randPacket(r *rand.Rand, t Type, v Version) Packet {
	return rpGen{}.packet(r, t, v)
}

func (g rpGen) packet(r *rand.Rand, t Type, v Version) Packet {
	if !v.Valid() {
		panic(fmt.Sprintf("randPacket: version %v", v))
	}
	switch t {
	case CONNECT:
		return g.connect(r, v)
	case CONNACK:
		return g.connack(r, v)
	case PUBLISH:
		return g.publish(r, v)
	case PUBACK:
		return (*Puback)(g.ack(r, t, v))
	case PUBREC:
		return (*Pubrec)(g.ack(r, t, v))
	case PUBREL:
		return (*Pubrel)(g.ack(r, t, v))
	case PUBCOMP:
		return (*Pubcomp)(g.ack(r, t, v))
	case SUBSCRIBE:
		return g.subscribe(r, v)
	case SUBACK:
		return g.suback(r, v)
	case UNSUBSCRIBE:
		return g.unsubscribe(r, v)
	case UNSUBACK:
		return g.unsuback(r, v)
	case PINGREQ:
		return &Pingreq{}
	case PINGRESP:
		return &Pingresp{}
	case DISCONNECT:
		return g.disconnect(r, v)
	case AUTH:
		if v != V5 {
			panic("randPacket: AUTH exists only in MQTT 5")
		}
		return g.auth(r)
	}
	panic(fmt.Sprintf("randPacket: type %v", t))
}

// rpTypes returns the packet types that exist in version v.
func rpTypes(v Version) []Type {
	var ts []Type
	for t := CONNECT; t <= AUTH; t++ {
		if t != AUTH || v == V5 {
			ts = append(ts, t)
		}
	}
	return ts
}

// rpVersions are the protocol versions, in order.
var rpVersions = []Version{V31, V311, V5}

// Scalars. Edge values come up often: they are where encoders go wrong.

func rpChance(r *rand.Rand, percent int) bool { return r.IntN(100) < percent }

func rpUint16(r *rand.Rand) uint16 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return 0xffff
	case 2:
		return uint16(r.IntN(256))
	}
	return uint16(r.Uint32())
}

func rpUint16NonZero(r *rand.Rand) uint16 {
	for {
		if v := rpUint16(r); v != 0 {
			return v
		}
	}
}

func rpUint32(r *rand.Rand) uint32 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return 0xffff_ffff
	case 2:
		return uint32(r.IntN(1 << 16))
	}
	return r.Uint32()
}

func rpUint32NonZero(r *rand.Rand) uint32 {
	for {
		if v := rpUint32(r); v != 0 {
			return v
		}
	}
}

func rpBit(r *rand.Rand) byte { return byte(r.IntN(2)) }

// rpSubID returns a subscription identifier, often at a boundary of the variable byte
// integer encoding.
func rpSubID(r *rand.Rand) int {
	edges := [...]int{1, 127, 128, 16383, 16384, 2097151, 2097152, MaxSubscriptionID}
	if rpChance(r, 40) {
		return edges[r.IntN(len(edges))]
	}
	return 1 + r.IntN(MaxSubscriptionID)
}

// Strings. rpRune returns a code point an MQTT UTF-8 string may hold: never U+0000, never
// a surrogate, never a noncharacter, with one, two, three and four byte encodings mixed.
// Now and then it is U+FEFF (which must not be stripped [MQTT-1.5.4-3]) or a control
// character (U+0001, U+007F: discouraged by §1.5.4, but valid).
func rpRune(r *rand.Rand) rune {
	special := [...]rune{'é', 'ß', 'Ω', 'ж', '€', '中', '語', 0xFEFF, 0xFFFD, 0x1F600, 0x1D11E, 0x10FFFD, 0x7F, 0x01}
	switch n := r.IntN(10); {
	case n < 5:
		return rune(0x20 + r.IntN(0x7f-0x20)) // printable ASCII
	case n == 5:
		return special[r.IntN(len(special))]
	case n == 6:
		return rune(0x80 + r.IntN(0x800-0x80)) // two bytes
	case n == 7:
		for {
			c := rune(0x800 + r.IntN(0x10000-0x800)) // three bytes
			if (c < 0xD800 || c > 0xDFFF) && !rpNonchar(c) {
				return c
			}
		}
	default:
		for {
			c := rune(0x10000 + r.IntN(0x110000-0x10000)) // four bytes
			if !rpNonchar(c) {
				return c
			}
		}
	}
}

func rpNonchar(c rune) bool { return (c >= 0xFDD0 && c <= 0xFDEF) || c&0xFFFE == 0xFFFE }

// rpString returns a valid MQTT UTF-8 string of up to max runes (min at least); now and
// then a longer one, so that two-byte lengths and multi-byte remaining lengths occur.
func rpString(r *rand.Rand, min, max int) string {
	n := min
	if max > min {
		n += r.IntN(max - min + 1)
	}
	if max >= 8 && rpChance(r, 3) {
		n = 100 + r.IntN(300)
	}
	return rpRunes(r, n, func(rune) bool { return true })
}

// rpRunes returns a string of n runes, each one accepted by ok.
func rpRunes(r *rand.Rand, n int, ok func(rune) bool) string {
	var b strings.Builder
	for n > 0 {
		if c := rpRune(r); ok(c) {
			b.WriteRune(c)
			n--
		}
	}
	return b.String()
}

// propString returns the value of a string property: possibly empty, unless the generator
// is restricted to non-empty properties.
func (g rpGen) propString(r *rand.Rand) string {
	min := 0
	if g.nonEmptyProps {
		min = 1
	}
	return rpString(r, min, 12)
}

// rpBinary returns present binary data: []byte{} when empty, never nil.
func rpBinary(r *rand.Rand, min, max int) []byte {
	n := min
	if max > min {
		n += r.IntN(max - min + 1)
	}
	b := make([]byte, n)
	var w uint64
	for i := range b {
		if i%8 == 0 {
			w = r.Uint64()
		}
		b[i] = byte(w)
		w >>= 8
	}
	return b
}

// propBinary returns the value of a binary property: possibly empty, unless the generator
// is restricted to non-empty properties.
func (g rpGen) propBinary(r *rand.Rand) []byte {
	min := 0
	if g.nonEmptyProps {
		min = 1
	}
	return rpBinary(r, min, 16)
}

// rpPayload returns a PUBLISH or will payload and whether it is valid UTF-8 text. Sizes
// range from empty to several kilobytes (a three-byte remaining length).
func rpPayload(r *rand.Rand) ([]byte, bool) {
	var n int
	switch k := r.IntN(20); {
	case k < 3:
		n = 0
	case k < 12:
		n = r.IntN(32)
	case k < 18:
		n = r.IntN(400)
	case k < 19:
		n = r.IntN(4000)
	default:
		n = 16000 + r.IntN(4000)
	}
	if rpChance(r, 50) {
		s := rpRunes(r, n/2, func(c rune) bool { return c != 0 })
		return append([]byte{}, s...), true
	}
	b := rpBinary(r, n, n)
	return b, utf8.Valid(b)
}

// rpTopicName returns a valid, non-empty topic name: no wildcard, possibly empty levels.
func rpTopicName(r *rand.Rand) string {
	levels := make([]string, 1+r.IntN(4))
	for i := range levels {
		levels[i] = rpLevel(r, 0, 6)
	}
	if rpChance(r, 5) {
		levels[0] = "$SYS"
	}
	t := strings.Join(levels, "/")
	if t == "" {
		t = rpLevel(r, 1, 6)
	}
	return t
}

// rpLevel returns one topic level: no '/', '+' or '#'.
func rpLevel(r *rand.Rand, min, max int) string {
	n := min + r.IntN(max-min+1)
	return rpRunes(r, n, func(c rune) bool { return c != '/' && c != '+' && c != '#' })
}

// rpTopicFilter returns a valid topic filter, now and then a shared subscription.
func rpTopicFilter(r *rand.Rand) string {
	levels := make([]string, 1+r.IntN(4))
	for i := range levels {
		switch {
		case rpChance(r, 15):
			levels[i] = "+"
		case i == len(levels)-1 && rpChance(r, 15):
			levels[i] = "#"
		default:
			levels[i] = rpLevel(r, 0, 6)
		}
	}
	f := strings.Join(levels, "/")
	if f == "" {
		f = "#"
	}
	if rpChance(r, 15) {
		f = sharedPrefix + rpLevel(r, 1, 5) + "/" + f
	}
	return f
}

// rpReason returns a random reason code valid for MQTT 5 packet type t.
func rpReason(r *rand.Rand, t Type) ReasonCode {
	var codes []ReasonCode
	for c := 0; c < 256; c++ {
		if ReasonCode(c).ValidFor(t) {
			codes = append(codes, ReasonCode(c))
		}
	}
	if len(codes) == 0 {
		panic(fmt.Sprintf("no reason code is valid for %v", t))
	}
	// Success (or granted QoS 0) is the common case and selects the short forms.
	if codes[0] == Success && rpChance(r, 30) {
		return Success
	}
	return codes[r.IntN(len(codes))]
}

// Properties. props returns the properties listed in ids, each present with probability
// density (percent). User properties and subscription identifiers are added apart.

func (g rpGen) props(r *rand.Rand, density int, ids ...PropID) Properties {
	var p Properties
	g.fill(r, &p, density, ids...)
	return p
}

// fill adds to p the properties listed in ids, each with probability density (percent).
func (g rpGen) fill(r *rand.Rand, p *Properties, density int, ids ...PropID) {
	for _, id := range ids {
		if !rpChance(r, density) {
			continue
		}
		switch id {
		case PropPayloadFormat:
			p.PayloadFormat = rpBit(r)
		case PropMessageExpiry:
			p.MessageExpiry = rpUint32(r)
		case PropContentType:
			p.ContentType = g.propString(r)
		case PropResponseTopic:
			p.ResponseTopic = rpTopicName(r) // a topic name: never empty [MQTT-3.3.2-13]
		case PropCorrelationData:
			p.CorrelationData = g.propBinary(r)
		case PropSessionExpiry:
			p.SessionExpiry = rpUint32(r)
		case PropAssignedClientID:
			p.AssignedClientID = g.propString(r)
		case PropServerKeepAlive:
			p.ServerKeepAlive = rpUint16(r)
		case PropAuthMethod:
			p.AuthMethod = g.propString(r)
		case PropAuthData:
			if !p.Has(PropAuthMethod) {
				continue // data needs a method; PropAuthMethod is listed before it
			}
			p.AuthData = g.propBinary(r)
		case PropRequestProblemInfo:
			p.RequestProblemInfo = rpBit(r)
		case PropWillDelay:
			p.WillDelay = rpUint32(r)
		case PropRequestResponseInfo:
			p.RequestResponseInfo = rpBit(r)
		case PropResponseInfo:
			p.ResponseInfo = g.propString(r)
		case PropServerReference:
			p.ServerReference = g.propString(r)
		case PropReasonString:
			p.ReasonString = g.propString(r)
		case PropReceiveMaximum:
			p.ReceiveMaximum = rpUint16NonZero(r)
		case PropTopicAliasMaximum:
			p.TopicAliasMaximum = rpUint16(r)
		case PropTopicAlias:
			p.TopicAlias = rpUint16NonZero(r)
		case PropMaximumQoS:
			p.MaximumQoS = rpBit(r)
		case PropRetainAvailable:
			p.RetainAvailable = rpBit(r)
		case PropMaximumPacketSize:
			p.MaximumPacketSize = rpUint32NonZero(r)
		case PropWildcardSubAvailable:
			p.WildcardSubAvailable = rpBit(r)
		case PropSubIDAvailable:
			p.SubIDAvailable = rpBit(r)
		case PropSharedSubAvailable:
			p.SharedSubAvailable = rpBit(r)
		default:
			panic(fmt.Sprintf("props: %v is not a scalar, string or binary property", id))
		}
		p.Set(id)
	}
}

// rpDensity picks how full a property block is: often empty, often full.
func rpDensity(r *rand.Rand) int {
	return [...]int{0, 0, 25, 50, 75, 100}[r.IntN(6)]
}

// user appends 0 to 3 user properties, duplicates included. It leaves User nil when it adds
// none, as the decoder does.
func (g rpGen) user(r *rand.Rand, p *Properties) {
	for n := r.IntN(4); n > 0; n-- {
		switch {
		case len(p.User) > 0 && rpChance(r, 20): // the same pair again
			p.User = append(p.User, p.User[len(p.User)-1])
		case len(p.User) > 0 && rpChance(r, 20): // the same name, another value
			p.User = append(p.User, UserProperty{Key: p.User[len(p.User)-1].Key, Value: rpString(r, 0, 8)})
		default:
			p.User = append(p.User, UserProperty{Key: rpString(r, 0, 8), Value: rpString(r, 0, 8)})
		}
	}
}

// Packets.

func (g rpGen) connect(r *rand.Rand, v Version) *Connect {
	c := &Connect{
		ProtocolName: "MQTT",
		Version:      v,
		CleanStart:   rpChance(r, 50),
		KeepAlive:    rpUint16(r),
	}
	switch v {
	case V31:
		// 3.1: protocol name MQIsdp; client identifier of 1 to 23 characters.
		c.ProtocolName = "MQIsdp"
		c.ClientID = rpRunes(r, 1+r.IntN(23), func(c rune) bool { return c < 0x80 })
	case V311:
		// An empty client identifier needs a clean session [MQTT-3.1.3-7].
		if !c.CleanStart || rpChance(r, 85) {
			c.ClientID = rpString(r, 1, 23)
		}
	default:
		if rpChance(r, 85) {
			c.ClientID = rpString(r, 1, 23)
		}
	}
	if rpChance(r, 50) {
		c.HasUsername = true
		c.Username = rpString(r, 0, 12)
	}
	// Before MQTT 5 a password needs a user name [MQTT-3.1.2-22].
	if (v == V5 || c.HasUsername) && rpChance(r, 50) {
		c.HasPassword = true
		if v == V31 {
			c.Password = []byte(rpString(r, 0, 12)) // a UTF-8 string in 3.1
		} else {
			c.Password = rpBinary(r, 0, 24)
		}
	}
	if rpChance(r, 50) {
		w := &Will{QoS: byte(r.IntN(3)), Retain: rpChance(r, 50), Topic: rpTopicName(r)}
		var text bool
		w.Payload, text = rpPayload(r)
		if len(w.Payload) > 1000 {
			w.Payload = w.Payload[:r.IntN(1000)]
			text = utf8.Valid(w.Payload)
		}
		if v == V5 {
			if g.willPropsDelayUser {
				w.Properties = g.props(r, rpDensity(r), PropWillDelay)
			} else {
				w.Properties = g.props(r, rpDensity(r), PropPayloadFormat, PropMessageExpiry,
					PropContentType, PropResponseTopic, PropCorrelationData, PropWillDelay)
				if !text && w.Properties.PayloadFormat == 1 {
					w.Properties.PayloadFormat = 0 // 1 only with a UTF-8 payload
				}
			}
			g.user(r, &w.Properties)
		}
		c.Will = w
	}
	if v == V5 {
		c.Properties = g.props(r, rpDensity(r), PropSessionExpiry, PropAuthMethod, PropAuthData,
			PropRequestProblemInfo, PropRequestResponseInfo, PropReceiveMaximum,
			PropTopicAliasMaximum, PropMaximumPacketSize)
		g.user(r, &c.Properties)
	}
	return c
}

func (g rpGen) connack(r *rand.Rand, v Version) *Connack {
	c := &Connack{}
	if v == V5 {
		c.ReasonCode = rpReason(r, CONNACK)
		c.Properties = g.props(r, rpDensity(r), PropSessionExpiry, PropAssignedClientID,
			PropServerKeepAlive, PropAuthMethod, PropAuthData, PropResponseInfo,
			PropServerReference, PropReasonString, PropReceiveMaximum, PropTopicAliasMaximum,
			PropMaximumQoS, PropRetainAvailable, PropMaximumPacketSize,
			PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable)
		g.user(r, &c.Properties)
	} else if rpChance(r, 40) {
		c.ReasonCode = ReasonCode(1 + r.IntN(5)) // return codes 1 to 5
	}
	// Session present only with success [MQTT-3.2.2-4]; 3.1 has no such flag.
	if c.ReasonCode == Success && v != V31 {
		c.SessionPresent = rpChance(r, 50)
	}
	return c
}

func (g rpGen) publish(r *rand.Rand, v Version) *Publish {
	p := &Publish{QoS: byte(r.IntN(3)), Retain: rpChance(r, 50), Topic: rpTopicName(r)}
	if p.QoS > 0 {
		p.Dup = rpChance(r, 30) // only with QoS 1 and 2 [MQTT-3.3.1-2]
		p.PacketID = rpUint16NonZero(r)
	}
	var text bool
	p.Payload, text = rpPayload(r)
	if v == V5 {
		p.Properties = g.props(r, rpDensity(r), PropPayloadFormat, PropMessageExpiry,
			PropContentType, PropResponseTopic, PropCorrelationData, PropTopicAlias)
		if !text && p.Properties.PayloadFormat == 1 {
			p.Properties.PayloadFormat = 0 // 1 only with a UTF-8 payload
		}
		// A topic alias may stand for the topic name.
		if p.Properties.Has(PropTopicAlias) && rpChance(r, 40) {
			p.Topic = ""
		}
		n := r.IntN(4) // several subscription identifiers from a server
		if g.singlePublishSubID {
			n = min(n, 1)
		}
		for ; n > 0; n-- {
			p.Properties.SubscriptionIDs = append(p.Properties.SubscriptionIDs, rpSubID(r))
		}
		g.user(r, &p.Properties)
	}
	return p
}

func (g rpGen) ack(r *rand.Rand, t Type, v Version) *ack {
	a := &ack{PacketID: rpUint16NonZero(r)}
	if v == V5 {
		a.ReasonCode = rpReason(r, t)
		if rpChance(r, 50) {
			a.Properties = g.props(r, rpDensity(r), PropReasonString)
			g.user(r, &a.Properties)
		}
	}
	return a
}

func (g rpGen) subscribe(r *rand.Rand, v Version) *Subscribe {
	s := &Subscribe{PacketID: rpUint16NonZero(r)}
	for n := 1 + r.IntN(4); n > 0; n-- {
		sub := Subscription{Filter: rpTopicFilter(r), QoS: byte(r.IntN(3))}
		if v == V5 {
			// No local is a protocol error on a shared subscription [MQTT-3.8.3-4].
			sub.NoLocal = !strings.HasPrefix(sub.Filter, sharedPrefix) && rpChance(r, 50)
			sub.RetainAsPublished = rpChance(r, 50)
			sub.RetainHandling = byte(r.IntN(3))
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	if v == V5 {
		if rpChance(r, 40) { // at most one subscription identifier
			s.Properties.SubscriptionIDs = []int{rpSubID(r)}
		}
		g.user(r, &s.Properties)
	}
	return s
}

func (g rpGen) suback(r *rand.Rand, v Version) *Suback {
	s := &Suback{PacketID: rpUint16NonZero(r)}
	for n := 1 + r.IntN(4); n > 0; n-- {
		var rc ReasonCode
		switch {
		case v == V5:
			rc = rpReason(r, SUBACK)
		case v == V311 && rpChance(r, 20):
			rc = SubackFailure // 0x80 exists from 3.1.1 on
		default:
			rc = ReasonCode(r.IntN(3)) // granted QoS
		}
		s.ReasonCodes = append(s.ReasonCodes, rc)
	}
	if v == V5 {
		s.Properties = g.props(r, rpDensity(r), PropReasonString)
		g.user(r, &s.Properties)
	}
	return s
}

func (g rpGen) unsubscribe(r *rand.Rand, v Version) *Unsubscribe {
	u := &Unsubscribe{PacketID: rpUint16NonZero(r)}
	for n := 1 + r.IntN(4); n > 0; n-- {
		u.Filters = append(u.Filters, rpTopicFilter(r))
	}
	if v == V5 {
		g.user(r, &u.Properties)
	}
	return u
}

func (g rpGen) unsuback(r *rand.Rand, v Version) *Unsuback {
	u := &Unsuback{PacketID: rpUint16NonZero(r)}
	if v != V5 {
		return u // no reason codes before MQTT 5
	}
	for n := 1 + r.IntN(4); n > 0; n-- {
		u.ReasonCodes = append(u.ReasonCodes, rpReason(r, UNSUBACK))
	}
	u.Properties = g.props(r, rpDensity(r), PropReasonString)
	g.user(r, &u.Properties)
	return u
}

func (g rpGen) disconnect(r *rand.Rand, v Version) *Disconnect {
	d := &Disconnect{}
	if v != V5 {
		return d
	}
	for {
		d.ReasonCode = rpReason(r, DISCONNECT)
		if rpChance(r, 60) {
			d.Properties = g.props(r, rpDensity(r), PropSessionExpiry, PropServerReference, PropReasonString)
			g.user(r, &d.Properties)
		}
		if !g.noEmptyDisconnect || d.ReasonCode != NormalDisconnection || !d.Properties.Empty() {
			return d
		}
		d.Properties = Properties{}
	}
}

func (g rpGen) auth(r *rand.Rand) *Auth {
	a := &Auth{ReasonCode: [...]ReasonCode{Success, ContinueAuthentication, ReAuthenticate}[r.IntN(3)]}
	// An AUTH always names its authentication method (§3.15.2.2.2: omitting it is a
	// protocol error); the data, reason string and user properties are optional.
	g.fill(r, &a.Properties, 100, PropAuthMethod)
	g.fill(r, &a.Properties, rpDensity(r), PropAuthData, PropReasonString)
	g.user(r, &a.Properties)
	return a
}

// TestRandPacketCoverage guards the generator itself: over a few thousand packets it must
// produce every field, flag, property, reason code and kind of string the round-trip and
// differential tests claim to exercise. A generator that silently stopped producing
// something would make those tests pass for the wrong reason.
func TestRandPacketCoverage(t *testing.T) {
	const perType = 500
	r, seed := rpRand(t)
	seen := map[string]bool{}
	see := func(cond bool, f string, args ...any) {
		if cond {
			seen[fmt.Sprintf(f, args...)] = true
		}
	}
	runeSizes := func(s string) {
		for _, c := range s {
			see(true, "rune of %d bytes", utf8.RuneLen(c))
		}
	}
	var want []string
	need := func(f string, args ...any) { want = append(want, fmt.Sprintf(f, args...)) }
	propIDs := func(p *Properties, ctx string) {
		for id := PropPayloadFormat; id <= PropSharedSubAvailable; id++ {
			see(p.Has(id), "%s %v", ctx, id)
		}
		see(len(p.SubscriptionIDs) > 1, "%s several subscription identifiers", ctx)
		see(p.Has(PropCorrelationData) && len(p.CorrelationData) == 0, "%s empty correlation data", ctx)
		see(p.Has(PropAuthData) && len(p.AuthData) == 0, "%s empty authentication data", ctx)
		for i := 1; i < len(p.User); i++ {
			see(p.User[i] == p.User[i-1], "%s repeated user property", ctx)
		}
		runeSizes(p.ReasonString)
	}
	needProps := func(ctx string, ids ...PropID) {
		for _, id := range ids {
			need("%s %v", ctx, id)
		}
	}

	for _, v := range rpVersions {
		for _, typ := range rpTypes(v) {
			for range perType {
				ctx := v.String() + " " + typ.String()
				switch p := randPacket(r, typ, v).(type) {
				case *Connect:
					see(p.Will == nil, "%s without will", ctx)
					see(p.HasUsername, "%s user name", ctx)
					see(p.HasPassword, "%s password", ctx)
					see(p.HasPassword && !p.HasUsername, "%s password without user name", ctx)
					see(p.HasPassword && len(p.Password) == 0, "%s empty password", ctx)
					see(p.ClientID == "", "%s empty client identifier", ctx)
					runeSizes(p.ClientID)
					propIDs(&p.Properties, ctx)
					if w := p.Will; w != nil {
						see(true, "%s will QoS %d", ctx, w.QoS)
						see(w.Retain, "%s will retain", ctx)
						see(len(w.Payload) == 0, "%s empty will payload", ctx)
						runeSizes(w.Topic)
						propIDs(&w.Properties, ctx+" will")
					}
				case *Connack:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					see(p.SessionPresent, "%s session present", ctx)
					propIDs(&p.Properties, ctx)
				case *Publish:
					see(true, "%s QoS %d", ctx, p.QoS)
					see(p.Dup, "%s dup", ctx)
					see(p.Retain, "%s retain", ctx)
					see(p.Topic == "", "%s empty topic", ctx)
					see(len(p.Payload) == 0, "%s empty payload", ctx)
					see(len(p.Payload) > 16384, "%s payload over 16 KiB", ctx)
					see(p.Properties.Has(PropPayloadFormat) && p.Properties.PayloadFormat == 1, "%s UTF-8 payload format", ctx)
					runeSizes(p.Topic)
					propIDs(&p.Properties, ctx)
				case *Puback:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					propIDs(&p.Properties, ctx)
				case *Pubrec:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					propIDs(&p.Properties, ctx)
				case *Pubrel:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					propIDs(&p.Properties, ctx)
				case *Pubcomp:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					propIDs(&p.Properties, ctx)
				case *Subscribe:
					see(len(p.Subscriptions) == 4, "%s 4 filters", ctx)
					for _, s := range p.Subscriptions {
						see(true, "%s QoS %d", ctx, s.QoS)
						see(s.NoLocal, "%s no local", ctx)
						see(s.RetainAsPublished, "%s retain as published", ctx)
						see(true, "%s retain handling %d", ctx, s.RetainHandling)
						see(strings.HasPrefix(s.Filter, sharedPrefix), "%s shared", ctx)
						see(strings.Contains(s.Filter, "+"), "%s +", ctx)
						see(strings.HasSuffix(s.Filter, "#"), "%s #", ctx)
					}
					propIDs(&p.Properties, ctx)
				case *Suback:
					for _, c := range p.ReasonCodes {
						see(true, "%s code %#x", ctx, byte(c))
					}
					propIDs(&p.Properties, ctx)
				case *Unsubscribe:
					see(len(p.Filters) == 4, "%s 4 filters", ctx)
					propIDs(&p.Properties, ctx)
				case *Unsuback:
					for _, c := range p.ReasonCodes {
						see(true, "%s code %#x", ctx, byte(c))
					}
					propIDs(&p.Properties, ctx)
				case *Disconnect:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					see(p.ReasonCode == Success && p.Properties.Empty(), "%s empty body", ctx)
					propIDs(&p.Properties, ctx)
				case *Auth:
					see(true, "%s code %#x", ctx, byte(p.ReasonCode))
					propIDs(&p.Properties, ctx)
				}
			}
		}
	}

	for n := 1; n <= 4; n++ {
		need("rune of %d bytes", n)
	}
	for _, v := range rpVersions {
		pre := v.String() + " "
		for _, f := range []string{"without will", "user name", "password", "will QoS 0", "will QoS 1",
			"will QoS 2", "will retain", "empty will payload", "empty password"} {
			need(pre+"CONNECT %s", f)
		}
		for _, f := range []string{"QoS 0", "QoS 1", "QoS 2", "dup", "retain", "empty payload", "payload over 16 KiB"} {
			need(pre+"PUBLISH %s", f)
		}
		for _, f := range []string{"QoS 0", "QoS 1", "QoS 2", "4 filters", "shared", "+", "#"} {
			need(pre+"SUBSCRIBE %s", f)
		}
		need("%sUNSUBSCRIBE 4 filters", pre)
		if v != V5 {
			for c := 0; c <= 5; c++ {
				need(pre+"CONNACK code %#x", c)
			}
			for c := 0; c <= 2; c++ {
				need(pre+"SUBACK code %#x", c)
			}
		}
	}
	need("3.1.1 CONNECT empty client identifier")
	need("3.1.1 CONNACK session present")
	need("3.1.1 SUBACK code 0x80")
	v5 := "5.0 "
	for _, f := range []string{"empty client identifier", "password without user name", "repeated user property"} {
		need(v5+"CONNECT %s", f)
	}
	needProps(v5+"CONNECT", PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize)
	needProps(v5+"CONNECT will", PropPayloadFormat, PropMessageExpiry, PropContentType,
		PropResponseTopic, PropCorrelationData, PropWillDelay, PropUser)
	need("%sCONNECT empty authentication data", v5)
	need("%sCONNECT will empty correlation data", v5)
	need("%sCONNACK session present", v5)
	needProps(v5+"CONNACK", PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive,
		PropAuthMethod, PropAuthData, PropResponseInfo, PropServerReference, PropReasonString,
		PropReceiveMaximum, PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser,
		PropMaximumPacketSize, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable)
	needProps(v5+"PUBLISH", PropPayloadFormat, PropMessageExpiry, PropContentType,
		PropResponseTopic, PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser)
	for _, f := range []string{"empty topic", "UTF-8 payload format", "several subscription identifiers", "empty correlation data"} {
		need(v5+"PUBLISH %s", f)
	}
	for _, f := range []string{"no local", "retain as published", "retain handling 0", "retain handling 1", "retain handling 2"} {
		need(v5+"SUBSCRIBE %s", f)
	}
	needProps(v5+"SUBSCRIBE", PropSubscriptionID, PropUser)
	needProps(v5+"UNSUBSCRIBE", PropUser)
	needProps(v5+"DISCONNECT", PropSessionExpiry, PropServerReference, PropReasonString, PropUser)
	need("%sDISCONNECT empty body", v5)
	needProps(v5+"AUTH", PropAuthMethod, PropAuthData, PropReasonString, PropUser)
	for _, typ := range []Type{CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH} {
		for c := 0; c < 256; c++ {
			if ReasonCode(c).ValidFor(typ) {
				need(v5+"%v code %#x", typ, c)
			}
		}
		if typ != AUTH && typ != DISCONNECT && typ != CONNACK {
			needProps(v5+typ.String(), PropReasonString, PropUser)
		}
	}

	for _, f := range want {
		if !seen[f] {
			t.Errorf("the generator never produced: %s (seed %d)", f, seed)
		}
	}
}
