package packet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// Differential tests against github.com/eclipse/paho.golang/packets (v0.23.0), an
// independent MQTT 5 codec, and hand-checked byte vectors for MQTT 3.1.1, which paho.golang
// does not implement. paho.golang is a test-only dependency: no non-test file may import
// it. Helpers are prefixed ph.
//
// For every MQTT 5 packet type, random packets go both ways:
//
//   - rampart encodes, paho decodes: the paho value is compared field by field with ours
//     (phDiff), then mapped back to our types and compared with reflect.DeepEqual;
//   - paho encodes (from our packet mapped to paho's types), rampart decodes: the result
//     must be reflect.DeepEqual to the original packet. Where paho is known to write the
//     same bytes as we do, the bytes are compared too (phSameBytes).
//
// The generator is restricted to what paho can represent; each restriction is a field of
// rpGen and is explained here. None of them loosens a comparison: a restricted packet is
// compared exactly.
//
//  1. nonEmptyProps. paho.golang keeps string properties as plain strings and binary
//     properties as plain slices, and Properties.Pack writes them only when non-empty
//     (`if i.ContentType != ""`, `if len(i.CorrelationData) > 0`, ...). When paho encodes,
//     a present but empty string or binary property is dropped; when paho decodes, a
//     present but empty string reads the same as an absent one. Both directions use only
//     non-empty ones, so "present" and "non-empty on the paho side" coincide and presence
//     is checked exactly.
//  2. singlePublishSubID. paho's Properties has one SubscriptionIdentifier *int; a PUBLISH
//     with several subscription identifiers keeps only the last. Both directions use at
//     most one.
//  3. willPropsDelayUser (paho encodes only). paho writes will properties with
//     Properties.Pack(CONNECT), which has no case for payload format indicator, message
//     expiry, content type, response topic or correlation data: they are silently dropped.
//     When paho encodes, will properties are only the will delay interval and user
//     properties. When rampart encodes, all will properties are generated (paho decodes
//     them, since its CONNECT allow-list covers both property sets).
//  4. noEmptyDisconnect (rampart encodes only). paho's Disconnect.Unpack always reads a
//     reason code and fails with io.EOF on the empty body that MQTT 5 §3.14.2.1 allows for
//     a normal disconnection without properties (E0 00), which is what we encode.
//     phQuirks below checks that this is still so; the other direction (paho always
//     writes the reason code and the property length) needs no restriction.
//  5. AUTH through Auth.WriteTo. packets.NewControlPacket(AUTH) sets the fixed-header flags
//     to 1 (reserved, must be 0 [MQTT-2.2.2-1]); Auth.WriteTo writes 0. We encode through
//     the WriteTo of each packet, and phQuirks checks that we refuse the flags-1 form as
//     malformed.
//
// Differences in encoding that need no restriction, because values are compared after
// decoding: paho writes CONNECT and CONNACK properties in its own order (we write them by
// ascending identifier; MQTT 5 does not fix an order), and it always writes the reason code
// of PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH, and the property length of
// PUBACK, DISCONNECT and AUTH (we write the short forms). phSameBytes lists when the bytes
// must be identical anyway.

// phPacketsPerType is how many random packets each direction checks per packet type.
const phPacketsPerType = 500

var (
	// phFromRampart generates packets that rampart encodes and paho decodes.
	phFromRampart = rpGen{nonEmptyProps: true, singlePublishSubID: true, noEmptyDisconnect: true}
	// phFromPaho generates packets that paho encodes and rampart decodes.
	phFromPaho = rpGen{nonEmptyProps: true, singlePublishSubID: true, willPropsDelayUser: true}
)

func TestPahoDifferential(t *testing.T) {
	for _, typ := range rpTypes(V5) {
		t.Run("5.0/"+typ.String()+"/encode-rampart-decode-paho", func(t *testing.T) {
			t.Parallel()
			r, seed := rpRand(t)
			for i := range phPacketsPerType {
				p := phFromRampart.packet(r, typ, V5)
				if err := phRampartToPaho(p); err != nil {
					rpFailf(t, seed, i, p, "%v", err)
				}
			}
		})
		t.Run("5.0/"+typ.String()+"/encode-paho-decode-rampart", func(t *testing.T) {
			t.Parallel()
			r, seed := rpRand(t)
			same := 0
			for i := range phPacketsPerType {
				p := phFromPaho.packet(r, typ, V5)
				sameBytes, err := phPahoToRampart(p)
				if err != nil {
					rpFailf(t, seed, i, p, "%v", err)
				}
				if sameBytes {
					same++
				}
			}
			if same == 0 {
				t.Errorf("no packet had its bytes compared with paho's")
			}
			t.Logf("%d of %d packets also compared byte for byte", same, phPacketsPerType)
		})
	}
	t.Run("[properties mapping]", phCheckPropertyFields)
	t.Run("[paho quirks]", phQuirks)
	t.Run("[3.1.1 vectors]", phVectors311)
}

// phRampartToPaho encodes p with rampart and decodes it with paho.
func phRampartToPaho(p Packet) error {
	b, err := p.AppendTo(nil, V5)
	if err != nil {
		return fmt.Errorf("AppendTo: %v", err)
	}
	src := bytes.NewReader(b)
	cp, err := packets.ReadPacket(src)
	if err != nil {
		return fmt.Errorf("paho cannot read % X: %v", rtShort(b), err)
	}
	if src.Len() != 0 {
		return fmt.Errorf("paho left %d of %d bytes unread", src.Len(), len(b))
	}
	if cp.Type != byte(p.Type()) || cp.Flags != b[0]&0x0f {
		return fmt.Errorf("paho reads type %d flags %#x from first byte %#x", cp.Type, cp.Flags, b[0])
	}
	if d := phDiff(p, cp.Content); len(d) > 0 {
		return fmt.Errorf("paho decodes % X differently:\n  %v", rtShort(b), d)
	}
	back, err := phFromPahoPacket(cp.Content)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(back, p) {
		return fmt.Errorf("paho's value mapped back differs at %s", rtDiff(back, p))
	}
	return nil
}

// phPahoToRampart encodes p with paho and decodes it with rampart. It reports whether the
// bytes were also compared with rampart's encoding.
func phPahoToRampart(p Packet) (bool, error) {
	q, err := phToPaho(p)
	if err != nil {
		return false, err
	}
	var w bytes.Buffer
	if _, err := q.WriteTo(&w); err != nil {
		return false, fmt.Errorf("paho WriteTo: %v", err)
	}
	b := w.Bytes()
	v := Version(V5)
	if p.Type() == CONNECT {
		v = 0
	}
	rd := NewReader(bufio.NewReader(bytes.NewReader(b)), 0)
	got, err := rd.ReadPacket(v)
	if err != nil {
		return false, fmt.Errorf("rampart cannot read paho's % X: %v", rtShort(b), err)
	}
	if !reflect.DeepEqual(got, p) {
		return false, fmt.Errorf("rampart decodes paho's % X differently, at %s\ngot: %s", rtShort(b), rtDiff(got, p), rpDump(got))
	}
	if !phSameBytes(p) {
		return false, nil
	}
	ours, err := p.AppendTo(nil, V5)
	if err != nil {
		return false, fmt.Errorf("AppendTo: %v", err)
	}
	if !bytes.Equal(ours, b) {
		return false, fmt.Errorf("paho writes % X, rampart % X", rtShort(b), rtShort(ours))
	}
	return true, nil
}

// phSameBytes reports whether paho writes p with the same bytes as rampart. See the comment
// at the top of the file: paho orders CONNECT and CONNACK properties differently from us
// (for PUBLISH, DISCONNECT, AUTH, the acks and the subscription packets its order is ours:
// ascending identifiers, subscription identifier after them, user properties last), and
// it writes long forms where we write short ones.
func phSameBytes(p Packet) bool {
	ordered := func(pr *Properties) bool { return bits.OnesCount64(pr.present) <= 1 }
	switch p := p.(type) {
	case *Connect:
		return ordered(&p.Properties) // will properties are only will delay and user here
	case *Connack:
		return ordered(&p.Properties)
	case *Puback:
		return !p.Properties.Empty() // paho always writes the reason code and property length
	case *Pubrec:
		return !p.Properties.Empty() || p.ReasonCode != Success // paho always writes the reason code
	case *Pubrel:
		return !p.Properties.Empty() || p.ReasonCode != Success
	case *Pubcomp:
		return !p.Properties.Empty() || p.ReasonCode != Success
	case *Disconnect:
		return !p.Properties.Empty() // paho always writes the reason code and property length
	case *Auth:
		return !p.Properties.Empty()
	}
	return true
}

// Mapping between our properties and paho's.

// phPropFields names every field of packets.Properties that phDiffProps, phToPahoProps and
// phFromPahoProps handle, so that phCheckPropertyFields notices a paho field left out.
var phPropFields = []string{"PayloadFormat", "MessageExpiry", "ContentType", "ResponseTopic",
	"CorrelationData", "SubscriptionIdentifier", "SessionExpiryInterval", "AssignedClientID",
	"ServerKeepAlive", "AuthMethod", "AuthData", "RequestProblemInfo", "WillDelayInterval",
	"RequestResponseInfo", "ResponseInfo", "ServerReference", "ReasonString", "ReceiveMaximum",
	"TopicAliasMaximum", "TopicAlias", "MaximumQOS", "RetainAvailable", "User",
	"MaximumPacketSize", "WildcardSubAvailable", "SubIDAvailable", "SharedSubAvailable"}

func phCheckPropertyFields(t *testing.T) {
	typ := reflect.TypeFor[packets.Properties]()
	var have []string
	for i := range typ.NumField() {
		have = append(have, typ.Field(i).Name)
	}
	if !reflect.DeepEqual(have, phPropFields) {
		t.Fatalf("packets.Properties has fields\n%v\nthe mapping handles\n%v", have, phPropFields)
	}
}

// phScalar compares a scalar property: present with value want, or absent (nil) in paho.
func phScalar[T comparable](d *[]string, ctx, name string, has bool, want T, got *T) {
	switch {
	case has && got == nil:
		*d = append(*d, fmt.Sprintf("%s %s: absent in paho, want %v", ctx, name, want))
	case has && *got != want:
		*d = append(*d, fmt.Sprintf("%s %s: paho %v, want %v", ctx, name, *got, want))
	case !has && got != nil:
		*d = append(*d, fmt.Sprintf("%s %s: paho %v, want absent", ctx, name, *got))
	}
}

// phString compares a string property. With restriction 1, present means non-empty.
func phString(d *[]string, ctx, name string, has bool, want, got string) {
	switch {
	case has && want == "":
		*d = append(*d, fmt.Sprintf("%s %s: present and empty, outside the common ground", ctx, name))
	case has && got != want:
		*d = append(*d, fmt.Sprintf("%s %s: paho %q, want %q", ctx, name, got, want))
	case !has && got != "":
		*d = append(*d, fmt.Sprintf("%s %s: paho %q, want absent", ctx, name, got))
	}
}

// phBinary compares a binary property. With restriction 1, present means non-empty.
func phBinary(d *[]string, ctx, name string, has bool, want, got []byte) {
	switch {
	case has && len(want) == 0:
		*d = append(*d, fmt.Sprintf("%s %s: present and empty, outside the common ground", ctx, name))
	case has && !bytes.Equal(got, want):
		*d = append(*d, fmt.Sprintf("%s %s: paho % X, want % X", ctx, name, got, want))
	case !has && got != nil:
		*d = append(*d, fmt.Sprintf("%s %s: paho % X, want absent", ctx, name, got))
	}
}

// phDiffProps compares our properties with paho's, field by field.
func phDiffProps(d *[]string, ctx string, o *Properties, q *packets.Properties) {
	if q == nil {
		*d = append(*d, ctx+": paho has no properties")
		return
	}
	phScalar(d, ctx, "PayloadFormat", o.Has(PropPayloadFormat), o.PayloadFormat, q.PayloadFormat)
	phScalar(d, ctx, "MessageExpiry", o.Has(PropMessageExpiry), o.MessageExpiry, q.MessageExpiry)
	phString(d, ctx, "ContentType", o.Has(PropContentType), o.ContentType, q.ContentType)
	phString(d, ctx, "ResponseTopic", o.Has(PropResponseTopic), o.ResponseTopic, q.ResponseTopic)
	phBinary(d, ctx, "CorrelationData", o.Has(PropCorrelationData), o.CorrelationData, q.CorrelationData)
	switch len(o.SubscriptionIDs) {
	case 0:
		phScalar(d, ctx, "SubscriptionIdentifier", false, 0, q.SubscriptionIdentifier)
	case 1:
		phScalar(d, ctx, "SubscriptionIdentifier", true, o.SubscriptionIDs[0], q.SubscriptionIdentifier)
	default:
		*d = append(*d, ctx+": several subscription identifiers, outside the common ground")
	}
	phScalar(d, ctx, "SessionExpiryInterval", o.Has(PropSessionExpiry), o.SessionExpiry, q.SessionExpiryInterval)
	phString(d, ctx, "AssignedClientID", o.Has(PropAssignedClientID), o.AssignedClientID, q.AssignedClientID)
	phScalar(d, ctx, "ServerKeepAlive", o.Has(PropServerKeepAlive), o.ServerKeepAlive, q.ServerKeepAlive)
	phString(d, ctx, "AuthMethod", o.Has(PropAuthMethod), o.AuthMethod, q.AuthMethod)
	phBinary(d, ctx, "AuthData", o.Has(PropAuthData), o.AuthData, q.AuthData)
	phScalar(d, ctx, "RequestProblemInfo", o.Has(PropRequestProblemInfo), o.RequestProblemInfo, q.RequestProblemInfo)
	phScalar(d, ctx, "WillDelayInterval", o.Has(PropWillDelay), o.WillDelay, q.WillDelayInterval)
	phScalar(d, ctx, "RequestResponseInfo", o.Has(PropRequestResponseInfo), o.RequestResponseInfo, q.RequestResponseInfo)
	phString(d, ctx, "ResponseInfo", o.Has(PropResponseInfo), o.ResponseInfo, q.ResponseInfo)
	phString(d, ctx, "ServerReference", o.Has(PropServerReference), o.ServerReference, q.ServerReference)
	phString(d, ctx, "ReasonString", o.Has(PropReasonString), o.ReasonString, q.ReasonString)
	phScalar(d, ctx, "ReceiveMaximum", o.Has(PropReceiveMaximum), o.ReceiveMaximum, q.ReceiveMaximum)
	phScalar(d, ctx, "TopicAliasMaximum", o.Has(PropTopicAliasMaximum), o.TopicAliasMaximum, q.TopicAliasMaximum)
	phScalar(d, ctx, "TopicAlias", o.Has(PropTopicAlias), o.TopicAlias, q.TopicAlias)
	phScalar(d, ctx, "MaximumQOS", o.Has(PropMaximumQoS), o.MaximumQoS, q.MaximumQOS)
	phScalar(d, ctx, "RetainAvailable", o.Has(PropRetainAvailable), o.RetainAvailable, q.RetainAvailable)
	if len(o.User) != len(q.User) {
		*d = append(*d, fmt.Sprintf("%s User: paho %d pairs %v, want %d %v", ctx, len(q.User), q.User, len(o.User), o.User))
	} else {
		for i, u := range o.User {
			if q.User[i].Key != u.Key || q.User[i].Value != u.Value {
				*d = append(*d, fmt.Sprintf("%s User[%d]: paho %q=%q, want %q=%q", ctx, i, q.User[i].Key, q.User[i].Value, u.Key, u.Value))
			}
		}
	}
	phScalar(d, ctx, "MaximumPacketSize", o.Has(PropMaximumPacketSize), o.MaximumPacketSize, q.MaximumPacketSize)
	phScalar(d, ctx, "WildcardSubAvailable", o.Has(PropWildcardSubAvailable), o.WildcardSubAvailable, q.WildcardSubAvailable)
	phScalar(d, ctx, "SubIDAvailable", o.Has(PropSubIDAvailable), o.SubIDAvailable, q.SubIDAvailable)
	phScalar(d, ctx, "SharedSubAvailable", o.Has(PropSharedSubAvailable), o.SharedSubAvailable, q.SharedSubAvailable)
}

// phDiff compares our packet with the one paho decoded, field by field.
func phDiff(p Packet, content packets.Packet) []string {
	var d []string
	eq := func(name string, got, want any) {
		if !reflect.DeepEqual(got, want) {
			d = append(d, fmt.Sprintf("%s: paho %v, want %v", name, got, want))
		}
	}
	wrongType := func() []string { return []string{fmt.Sprintf("paho decoded a %T for a %v", content, p.Type())} }
	switch p := p.(type) {
	case *Connect:
		q, ok := content.(*packets.Connect)
		if !ok {
			return wrongType()
		}
		eq("ProtocolName", q.ProtocolName, "MQTT")
		eq("ProtocolVersion", q.ProtocolVersion, byte(V5))
		eq("CleanStart", q.CleanStart, p.CleanStart)
		eq("KeepAlive", q.KeepAlive, p.KeepAlive)
		eq("ClientID", q.ClientID, p.ClientID)
		eq("UsernameFlag", q.UsernameFlag, p.HasUsername)
		eq("Username", q.Username, p.Username)
		eq("PasswordFlag", q.PasswordFlag, p.HasPassword)
		if !bytes.Equal(q.Password, p.Password) { // presence is PasswordFlag
			d = append(d, fmt.Sprintf("Password: paho % X, want % X", q.Password, p.Password))
		}
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
		eq("WillFlag", q.WillFlag, p.Will != nil)
		if w := p.Will; w != nil {
			eq("WillQOS", q.WillQOS, w.QoS)
			eq("WillRetain", q.WillRetain, w.Retain)
			eq("WillTopic", q.WillTopic, w.Topic)
			if !bytes.Equal(q.WillMessage, w.Payload) { // presence is WillFlag
				d = append(d, fmt.Sprintf("WillMessage: paho % X, want % X", q.WillMessage, w.Payload))
			}
			phDiffProps(&d, "WillProperties", &w.Properties, q.WillProperties)
		} else {
			eq("WillQOS", q.WillQOS, byte(0))
			eq("WillRetain", q.WillRetain, false)
			eq("WillTopic", q.WillTopic, "")
			eq("WillMessage length", len(q.WillMessage), 0)
			if q.WillProperties != nil {
				d = append(d, "WillProperties: present without a will")
			}
		}
	case *Connack:
		q, ok := content.(*packets.Connack)
		if !ok {
			return wrongType()
		}
		eq("SessionPresent", q.SessionPresent, p.SessionPresent)
		eq("ReasonCode", q.ReasonCode, byte(p.ReasonCode))
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Publish:
		q, ok := content.(*packets.Publish)
		if !ok {
			return wrongType()
		}
		eq("Duplicate", q.Duplicate, p.Dup)
		eq("QoS", q.QoS, p.QoS)
		eq("Retain", q.Retain, p.Retain)
		eq("Topic", q.Topic, p.Topic)
		eq("PacketID", q.PacketID, p.PacketID)
		if !bytes.Equal(q.Payload, p.Payload) {
			d = append(d, fmt.Sprintf("Payload: paho %d bytes, want %d", len(q.Payload), len(p.Payload)))
		}
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Puback:
		q, ok := content.(*packets.Puback)
		if !ok {
			return wrongType()
		}
		phDiffAck(&d, (*ack)(p), q.PacketID, q.ReasonCode, q.Properties)
	case *Pubrec:
		q, ok := content.(*packets.Pubrec)
		if !ok {
			return wrongType()
		}
		phDiffAck(&d, (*ack)(p), q.PacketID, q.ReasonCode, q.Properties)
	case *Pubrel:
		q, ok := content.(*packets.Pubrel)
		if !ok {
			return wrongType()
		}
		phDiffAck(&d, (*ack)(p), q.PacketID, q.ReasonCode, q.Properties)
	case *Pubcomp:
		q, ok := content.(*packets.Pubcomp)
		if !ok {
			return wrongType()
		}
		phDiffAck(&d, (*ack)(p), q.PacketID, q.ReasonCode, q.Properties)
	case *Subscribe:
		q, ok := content.(*packets.Subscribe)
		if !ok {
			return wrongType()
		}
		eq("PacketID", q.PacketID, p.PacketID)
		if len(q.Subscriptions) != len(p.Subscriptions) {
			d = append(d, fmt.Sprintf("Subscriptions: paho %d, want %d", len(q.Subscriptions), len(p.Subscriptions)))
		} else {
			for i, s := range p.Subscriptions {
				o := q.Subscriptions[i]
				eq(fmt.Sprintf("Subscriptions[%d]", i),
					[]any{o.Topic, o.QoS, o.NoLocal, o.RetainAsPublished, o.RetainHandling},
					[]any{s.Filter, s.QoS, s.NoLocal, s.RetainAsPublished, s.RetainHandling})
			}
		}
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Suback:
		q, ok := content.(*packets.Suback)
		if !ok {
			return wrongType()
		}
		eq("PacketID", q.PacketID, p.PacketID)
		eq("Reasons", q.Reasons, phCodes(p.ReasonCodes))
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Unsubscribe:
		q, ok := content.(*packets.Unsubscribe)
		if !ok {
			return wrongType()
		}
		eq("PacketID", q.PacketID, p.PacketID)
		eq("Topics", q.Topics, p.Filters)
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Unsuback:
		q, ok := content.(*packets.Unsuback)
		if !ok {
			return wrongType()
		}
		eq("PacketID", q.PacketID, p.PacketID)
		eq("Reasons", q.Reasons, phCodes(p.ReasonCodes))
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Pingreq:
		if _, ok := content.(*packets.Pingreq); !ok {
			return wrongType()
		}
	case *Pingresp:
		if _, ok := content.(*packets.Pingresp); !ok {
			return wrongType()
		}
	case *Disconnect:
		q, ok := content.(*packets.Disconnect)
		if !ok {
			return wrongType()
		}
		eq("ReasonCode", q.ReasonCode, byte(p.ReasonCode))
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	case *Auth:
		q, ok := content.(*packets.Auth)
		if !ok {
			return wrongType()
		}
		eq("ReasonCode", q.ReasonCode, byte(p.ReasonCode))
		phDiffProps(&d, "Properties", &p.Properties, q.Properties)
	default:
		return []string{fmt.Sprintf("phDiff: %T", p)}
	}
	return d
}

func phDiffAck(d *[]string, a *ack, id uint16, rc byte, q *packets.Properties) {
	if id != a.PacketID {
		*d = append(*d, fmt.Sprintf("PacketID: paho %d, want %d", id, a.PacketID))
	}
	if rc != byte(a.ReasonCode) {
		*d = append(*d, fmt.Sprintf("ReasonCode: paho %#x, want %#x", rc, byte(a.ReasonCode)))
	}
	phDiffProps(d, "Properties", &a.Properties, q)
}

func phCodes(cs []ReasonCode) []byte {
	b := make([]byte, len(cs))
	for i, c := range cs {
		b[i] = byte(c)
	}
	return b
}

// phPtr returns a pointer to a copy of v when present, else nil.
func phPtr[T any](present bool, v T) *T {
	if !present {
		return nil
	}
	return &v
}

// phToPahoProps maps our properties to paho's.
func phToPahoProps(o *Properties) (*packets.Properties, error) {
	if len(o.SubscriptionIDs) > 1 {
		return nil, errors.New("several subscription identifiers: outside the common ground")
	}
	q := &packets.Properties{
		PayloadFormat:         phPtr(o.Has(PropPayloadFormat), o.PayloadFormat),
		MessageExpiry:         phPtr(o.Has(PropMessageExpiry), o.MessageExpiry),
		ContentType:           o.ContentType,
		ResponseTopic:         o.ResponseTopic,
		CorrelationData:       o.CorrelationData,
		SessionExpiryInterval: phPtr(o.Has(PropSessionExpiry), o.SessionExpiry),
		AssignedClientID:      o.AssignedClientID,
		ServerKeepAlive:       phPtr(o.Has(PropServerKeepAlive), o.ServerKeepAlive),
		AuthMethod:            o.AuthMethod,
		AuthData:              o.AuthData,
		RequestProblemInfo:    phPtr(o.Has(PropRequestProblemInfo), o.RequestProblemInfo),
		WillDelayInterval:     phPtr(o.Has(PropWillDelay), o.WillDelay),
		RequestResponseInfo:   phPtr(o.Has(PropRequestResponseInfo), o.RequestResponseInfo),
		ResponseInfo:          o.ResponseInfo,
		ServerReference:       o.ServerReference,
		ReasonString:          o.ReasonString,
		ReceiveMaximum:        phPtr(o.Has(PropReceiveMaximum), o.ReceiveMaximum),
		TopicAliasMaximum:     phPtr(o.Has(PropTopicAliasMaximum), o.TopicAliasMaximum),
		TopicAlias:            phPtr(o.Has(PropTopicAlias), o.TopicAlias),
		MaximumQOS:            phPtr(o.Has(PropMaximumQoS), o.MaximumQoS),
		RetainAvailable:       phPtr(o.Has(PropRetainAvailable), o.RetainAvailable),
		MaximumPacketSize:     phPtr(o.Has(PropMaximumPacketSize), o.MaximumPacketSize),
		WildcardSubAvailable:  phPtr(o.Has(PropWildcardSubAvailable), o.WildcardSubAvailable),
		SubIDAvailable:        phPtr(o.Has(PropSubIDAvailable), o.SubIDAvailable),
		SharedSubAvailable:    phPtr(o.Has(PropSharedSubAvailable), o.SharedSubAvailable),
	}
	if len(o.SubscriptionIDs) == 1 {
		q.SubscriptionIdentifier = phPtr(true, o.SubscriptionIDs[0])
	}
	for _, u := range o.User {
		q.User = append(q.User, packets.User{Key: u.Key, Value: u.Value})
	}
	return q, nil
}

// phFromPahoProps maps paho's properties to ours. With restriction 1 a non-empty string or
// binary property is a present one.
func phFromPahoProps(q *packets.Properties) Properties {
	var o Properties
	if q == nil {
		return o
	}
	scalar := func(id PropID, present bool, set func()) {
		if present {
			set()
			o.Set(id)
		}
	}
	scalar(PropPayloadFormat, q.PayloadFormat != nil, func() { o.PayloadFormat = *q.PayloadFormat })
	scalar(PropMessageExpiry, q.MessageExpiry != nil, func() { o.MessageExpiry = *q.MessageExpiry })
	scalar(PropContentType, q.ContentType != "", func() { o.ContentType = q.ContentType })
	scalar(PropResponseTopic, q.ResponseTopic != "", func() { o.ResponseTopic = q.ResponseTopic })
	scalar(PropCorrelationData, len(q.CorrelationData) > 0, func() { o.CorrelationData = q.CorrelationData })
	if q.SubscriptionIdentifier != nil {
		o.SubscriptionIDs = []int{*q.SubscriptionIdentifier}
	}
	scalar(PropSessionExpiry, q.SessionExpiryInterval != nil, func() { o.SessionExpiry = *q.SessionExpiryInterval })
	scalar(PropAssignedClientID, q.AssignedClientID != "", func() { o.AssignedClientID = q.AssignedClientID })
	scalar(PropServerKeepAlive, q.ServerKeepAlive != nil, func() { o.ServerKeepAlive = *q.ServerKeepAlive })
	scalar(PropAuthMethod, q.AuthMethod != "", func() { o.AuthMethod = q.AuthMethod })
	scalar(PropAuthData, len(q.AuthData) > 0, func() { o.AuthData = q.AuthData })
	scalar(PropRequestProblemInfo, q.RequestProblemInfo != nil, func() { o.RequestProblemInfo = *q.RequestProblemInfo })
	scalar(PropWillDelay, q.WillDelayInterval != nil, func() { o.WillDelay = *q.WillDelayInterval })
	scalar(PropRequestResponseInfo, q.RequestResponseInfo != nil, func() { o.RequestResponseInfo = *q.RequestResponseInfo })
	scalar(PropResponseInfo, q.ResponseInfo != "", func() { o.ResponseInfo = q.ResponseInfo })
	scalar(PropServerReference, q.ServerReference != "", func() { o.ServerReference = q.ServerReference })
	scalar(PropReasonString, q.ReasonString != "", func() { o.ReasonString = q.ReasonString })
	scalar(PropReceiveMaximum, q.ReceiveMaximum != nil, func() { o.ReceiveMaximum = *q.ReceiveMaximum })
	scalar(PropTopicAliasMaximum, q.TopicAliasMaximum != nil, func() { o.TopicAliasMaximum = *q.TopicAliasMaximum })
	scalar(PropTopicAlias, q.TopicAlias != nil, func() { o.TopicAlias = *q.TopicAlias })
	scalar(PropMaximumQoS, q.MaximumQOS != nil, func() { o.MaximumQoS = *q.MaximumQOS })
	scalar(PropRetainAvailable, q.RetainAvailable != nil, func() { o.RetainAvailable = *q.RetainAvailable })
	for _, u := range q.User {
		o.User = append(o.User, UserProperty{Key: u.Key, Value: u.Value})
	}
	scalar(PropMaximumPacketSize, q.MaximumPacketSize != nil, func() { o.MaximumPacketSize = *q.MaximumPacketSize })
	scalar(PropWildcardSubAvailable, q.WildcardSubAvailable != nil, func() { o.WildcardSubAvailable = *q.WildcardSubAvailable })
	scalar(PropSubIDAvailable, q.SubIDAvailable != nil, func() { o.SubIDAvailable = *q.SubIDAvailable })
	scalar(PropSharedSubAvailable, q.SharedSubAvailable != nil, func() { o.SharedSubAvailable = *q.SharedSubAvailable })
	return o
}

// phNonNil returns b, or []byte{} for nil. rampart returns a present binary field as a
// non-nil slice; paho happens to do the same (its readBinary and the PUBLISH payload read
// through a bytes.Buffer), but its types do not promise it. Used only for fields whose
// presence a flag carries (CONNECT password, will payload) and for the PUBLISH payload.
func phNonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// phToPaho maps our packet to paho's, ready for WriteTo.
func phToPaho(p Packet) (packets.Packet, error) {
	var err error
	props := func(o *Properties) *packets.Properties {
		q, e := phToPahoProps(o)
		if e != nil && err == nil {
			err = e
		}
		return q
	}
	var q packets.Packet
	switch p := p.(type) {
	case *Connect:
		c := &packets.Connect{
			ProtocolName:    "MQTT",
			ProtocolVersion: byte(V5),
			CleanStart:      p.CleanStart,
			KeepAlive:       p.KeepAlive,
			ClientID:        p.ClientID,
			UsernameFlag:    p.HasUsername,
			Username:        p.Username,
			PasswordFlag:    p.HasPassword,
			Password:        p.Password,
			Properties:      props(&p.Properties),
		}
		if w := p.Will; w != nil {
			c.WillFlag = true
			c.WillQOS = w.QoS
			c.WillRetain = w.Retain
			c.WillTopic = w.Topic
			c.WillMessage = w.Payload
			c.WillProperties = props(&w.Properties)
		}
		q = c
	case *Connack:
		q = &packets.Connack{SessionPresent: p.SessionPresent, ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Publish:
		q = &packets.Publish{Duplicate: p.Dup, QoS: p.QoS, Retain: p.Retain, Topic: p.Topic,
			PacketID: p.PacketID, Payload: p.Payload, Properties: props(&p.Properties)}
	case *Puback:
		q = &packets.Puback{PacketID: p.PacketID, ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Pubrec:
		q = &packets.Pubrec{PacketID: p.PacketID, ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Pubrel:
		q = &packets.Pubrel{PacketID: p.PacketID, ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Pubcomp:
		q = &packets.Pubcomp{PacketID: p.PacketID, ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Subscribe:
		s := &packets.Subscribe{PacketID: p.PacketID, Properties: props(&p.Properties)}
		for _, o := range p.Subscriptions {
			s.Subscriptions = append(s.Subscriptions, packets.SubOptions{Topic: o.Filter, QoS: o.QoS,
				NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling})
		}
		q = s
	case *Suback:
		q = &packets.Suback{PacketID: p.PacketID, Reasons: phCodes(p.ReasonCodes), Properties: props(&p.Properties)}
	case *Unsubscribe:
		q = &packets.Unsubscribe{PacketID: p.PacketID, Topics: p.Filters, Properties: props(&p.Properties)}
	case *Unsuback:
		q = &packets.Unsuback{PacketID: p.PacketID, Reasons: phCodes(p.ReasonCodes), Properties: props(&p.Properties)}
	case *Pingreq:
		q = &packets.Pingreq{}
	case *Pingresp:
		q = &packets.Pingresp{}
	case *Disconnect:
		q = &packets.Disconnect{ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	case *Auth:
		q = &packets.Auth{ReasonCode: byte(p.ReasonCode), Properties: props(&p.Properties)}
	default:
		return nil, fmt.Errorf("phToPaho: %T", p)
	}
	return q, err
}

// phFromPahoPacket maps a packet paho decoded to ours.
func phFromPahoPacket(q packets.Packet) (Packet, error) {
	codes := func(b []byte) []ReasonCode {
		cs := make([]ReasonCode, len(b))
		for i, c := range b {
			cs[i] = ReasonCode(c)
		}
		return cs
	}
	switch q := q.(type) {
	case *packets.Connect:
		c := &Connect{
			ProtocolName: q.ProtocolName,
			Version:      Version(q.ProtocolVersion),
			CleanStart:   q.CleanStart,
			KeepAlive:    q.KeepAlive,
			ClientID:     q.ClientID,
			HasUsername:  q.UsernameFlag,
			Username:     q.Username,
			HasPassword:  q.PasswordFlag,
			Properties:   phFromPahoProps(q.Properties),
		}
		if q.PasswordFlag {
			c.Password = phNonNil(q.Password)
		}
		if q.WillFlag {
			c.Will = &Will{QoS: q.WillQOS, Retain: q.WillRetain, Topic: q.WillTopic,
				Payload: phNonNil(q.WillMessage), Properties: phFromPahoProps(q.WillProperties)}
		}
		return c, nil
	case *packets.Connack:
		return &Connack{SessionPresent: q.SessionPresent, ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Publish:
		return &Publish{Dup: q.Duplicate, QoS: q.QoS, Retain: q.Retain, Topic: q.Topic, PacketID: q.PacketID,
			Payload: phNonNil(q.Payload), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Puback:
		return &Puback{PacketID: q.PacketID, ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Pubrec:
		return &Pubrec{PacketID: q.PacketID, ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Pubrel:
		return &Pubrel{PacketID: q.PacketID, ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Pubcomp:
		return &Pubcomp{PacketID: q.PacketID, ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Subscribe:
		s := &Subscribe{PacketID: q.PacketID, Properties: phFromPahoProps(q.Properties)}
		for _, o := range q.Subscriptions {
			s.Subscriptions = append(s.Subscriptions, Subscription{Filter: o.Topic, QoS: o.QoS,
				NoLocal: o.NoLocal, RetainAsPublished: o.RetainAsPublished, RetainHandling: o.RetainHandling})
		}
		return s, nil
	case *packets.Suback:
		return &Suback{PacketID: q.PacketID, ReasonCodes: codes(q.Reasons), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Unsubscribe:
		return &Unsubscribe{PacketID: q.PacketID, Filters: q.Topics, Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Unsuback:
		return &Unsuback{PacketID: q.PacketID, ReasonCodes: codes(q.Reasons), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Pingreq:
		return &Pingreq{}, nil
	case *packets.Pingresp:
		return &Pingresp{}, nil
	case *packets.Disconnect:
		return &Disconnect{ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	case *packets.Auth:
		return &Auth{ReasonCode: ReasonCode(q.ReasonCode), Properties: phFromPahoProps(q.Properties)}, nil
	}
	return nil, fmt.Errorf("phFromPahoPacket: %T", q)
}

// phQuirks pins the paho behaviours that restrictions 4 and 5 work around, so that the
// restrictions are revisited if paho changes.
func phQuirks(t *testing.T) {
	// Restriction 4: paho cannot read the empty DISCONNECT body that MQTT 5 allows, while we
	// write and read it.
	empty := []byte{0xE0, 0x00}
	if b, err := (&Disconnect{}).AppendTo(nil, V5); err != nil || !bytes.Equal(b, empty) {
		t.Fatalf("rampart encodes a normal DISCONNECT as % X, %v; want % X", b, err, empty)
	}
	if _, err := packets.ReadPacket(bytes.NewReader(empty)); err == nil {
		t.Errorf("paho now reads E0 00: restriction 4 (noEmptyDisconnect) can be dropped")
	}

	// Restriction 5: NewControlPacket(AUTH) writes reserved flags 1, which we refuse.
	cp := packets.NewControlPacket(packets.AUTH)
	cp.Content.(*packets.Auth).Properties.AuthMethod = "m"
	var w bytes.Buffer
	if _, err := cp.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	if w.Bytes()[0] != 0xF1 {
		t.Errorf("paho's NewControlPacket(AUTH) now writes first byte %#x: restriction 5 can be dropped", w.Bytes()[0])
	}
	if _, err := NewReader(bytes.NewReader(w.Bytes()), 0).ReadPacket(V5); !errors.Is(err, ErrMalformed) {
		t.Errorf("AUTH with reserved flags 1: got %v, want a malformed packet error", err)
	}

	// Restriction 3: paho drops will properties that Pack(CONNECT) does not know.
	c := &packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "c", Properties: &packets.Properties{},
		WillFlag: true, WillTopic: "t", WillMessage: []byte("m"),
		WillProperties: &packets.Properties{ContentType: "text/plain"}}
	w.Reset()
	if _, err := c.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	got, err := NewReader(bytes.NewReader(w.Bytes()), 0).ReadPacket(0)
	if err != nil {
		t.Fatal(err)
	}
	if got.(*Connect).Will.Properties.Has(PropContentType) {
		t.Errorf("paho now writes will content type: restriction 3 (willPropsDelayUser) can be dropped")
	}
}

// phVectors311 checks MQTT 3.1.1 encodings byte for byte, in both directions. They follow
// the examples of the MQTT 3.1.1 specification (CONNECT variable header of §3.1.2.10:
// flags 0xCE and keep alive 10; PUBLISH variable header of §3.3.2.3: topic "a/b", packet
// identifier 10; SUBSCRIBE and UNSUBSCRIBE payloads "a/b" and "c/d"; SUBACK return codes
// 0, 2 and 0x80) and the fixed two-byte packets.
func phVectors311(t *testing.T) {
	for _, c := range []struct {
		name string
		wire []byte
		want Packet
	}{
		{
			"CONNECT spec example",
			[]byte{0x10, 0x24,
				0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xCE, 0x00, 0x0A,
				0x00, 0x07, 'r', 'a', 'm', 'p', 'a', 'r', 't',
				0x00, 0x03, 'a', '/', 'b',
				0x00, 0x03, 'b', 'y', 'e',
				0x00, 0x01, 'u',
				0x00, 0x02, 'p', 'w'},
			&Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 10, ClientID: "rampart",
				Will:        &Will{QoS: 1, Topic: "a/b", Payload: []byte("bye")},
				HasUsername: true, Username: "u", HasPassword: true, Password: []byte("pw")},
		},
		{
			"CONNECT empty client identifier, clean session",
			[]byte{0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00},
			&Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60},
		},
		{
			"CONNECT will retain QoS 2, user name only",
			[]byte{0x10, 0x18, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xB4, 0x00, 0x00,
				0x00, 0x01, 'c', 0x00, 0x01, 't', 0x00, 0x00, 0x00, 0x04, 'u', 's', 'e', 'r'},
			&Connect{ProtocolName: "MQTT", Version: V311, ClientID: "c",
				Will:        &Will{QoS: 2, Retain: true, Topic: "t", Payload: []byte{}},
				HasUsername: true, Username: "user"},
		},
		{"CONNACK accepted", []byte{0x20, 0x02, 0x00, 0x00}, &Connack{}},
		{"CONNACK session present", []byte{0x20, 0x02, 0x01, 0x00}, &Connack{SessionPresent: true}},
		{"CONNACK not authorized", []byte{0x20, 0x02, 0x00, 0x05}, &Connack{ReasonCode: ConnRefusedNotAuthorized}},
		{
			"PUBLISH QoS 1 spec example",
			[]byte{0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'},
			&Publish{QoS: 1, Topic: "a/b", PacketID: 10, Payload: []byte("hi")},
		},
		{
			"PUBLISH QoS 0 retain, empty payload",
			[]byte{0x31, 0x05, 0x00, 0x03, 'a', '/', 'b'},
			&Publish{Retain: true, Topic: "a/b", Payload: []byte{}},
		},
		{
			"PUBLISH QoS 2 dup",
			[]byte{0x3C, 0x08, 0x00, 0x03, 'a', '/', 'b', 0xFF, 0xFF, 0x00},
			&Publish{Dup: true, QoS: 2, Topic: "a/b", PacketID: 0xFFFF, Payload: []byte{0}},
		},
		{"PUBACK", []byte{0x40, 0x02, 0x00, 0x0A}, &Puback{PacketID: 10}},
		{"PUBREC", []byte{0x50, 0x02, 0x00, 0x0A}, &Pubrec{PacketID: 10}},
		{"PUBREL", []byte{0x62, 0x02, 0x00, 0x0A}, &Pubrel{PacketID: 10}},
		{"PUBCOMP", []byte{0x70, 0x02, 0x00, 0x0A}, &Pubcomp{PacketID: 10}},
		{
			"SUBSCRIBE spec example",
			[]byte{0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', 'd', 0x02},
			&Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/b", QoS: 1}, {Filter: "c/d", QoS: 2}}},
		},
		{
			"SUBACK spec example with failure 0x80",
			[]byte{0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80},
			&Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS0, GrantedQoS2, SubackFailure}},
		},
		{
			"UNSUBSCRIBE spec example",
			[]byte{0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x03, 'c', '/', 'd'},
			&Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
		},
		{"UNSUBACK", []byte{0xB0, 0x02, 0x00, 0x0A}, &Unsuback{PacketID: 10}},
		{"PINGREQ", []byte{0xC0, 0x00}, &Pingreq{}},
		{"PINGRESP", []byte{0xD0, 0x00}, &Pingresp{}},
		{"DISCONNECT", []byte{0xE0, 0x00}, &Disconnect{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := V311
			if c.want.Type() == CONNECT {
				v = 0
			}
			got, err := NewReader(bytes.NewReader(c.wire), 0).ReadPacket(v)
			if err != nil {
				t.Fatalf("reading % X: %v", c.wire, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("reading % X differs at %s\ngot: %s", c.wire, rtDiff(got, c.want), rpDump(got))
			}
			b, err := c.want.AppendTo(nil, V311)
			if err != nil || !bytes.Equal(b, c.wire) {
				t.Fatalf("encoding gives % X, %v; want % X", b, err, c.wire)
			}
		})
	}
}
