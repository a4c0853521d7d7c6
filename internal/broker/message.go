package broker

import (
	"time"

	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

// Message is one application message as the broker received it. It is immutable once
// routed and shared by every session it is delivered to; its Payload and string properties
// alias the PUBLISH body it was decoded from.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// Props are the properties passed through to subscribers: payload format, content
	// type, response topic, correlation data and user properties. Topic alias, message
	// expiry and subscription identifiers are set per delivery.
	Props packet.Properties
	// Expiry is when the message expires; zero means never.
	Expiry time.Time
	// From is the publisher's client identifier (for no-local), empty for the broker.
	From string
}

// newMessage builds a Message from a decoded PUBLISH whose topic alias has been resolved.
func newMessage(p *packet.Publish, topic, from string, now time.Time) *Message {
	m := &Message{Topic: topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from, Props: p.Properties}
	if m.Props.Has(packet.PropMessageExpiry) {
		m.Expiry = now.Add(time.Duration(m.Props.MessageExpiry) * time.Second)
	}
	m.Props.Clear(packet.PropMessageExpiry)
	m.Props.Clear(packet.PropTopicAlias)
	m.Props.SubscriptionIDs = nil
	return m
}

// expired reports whether the message has outlived its expiry interval.
func (m *Message) expired(now time.Time) bool {
	return !m.Expiry.IsZero() && !now.Before(m.Expiry)
}

// size approximates the memory a queued message holds, for byte budgets.
func (m *Message) size() int {
	return len(m.Topic) + len(m.Payload) + 64
}

// deliveryProps returns the properties of one delivery: the message's, the remaining
// expiry interval [MQTT-3.3.2-6] and the subscription identifiers.
func (m *Message) deliveryProps(now time.Time, subIDs []int) packet.Properties {
	p := m.Props
	if !m.Expiry.IsZero() {
		left := m.Expiry.Sub(now)
		secs := uint32((left + time.Second - 1) / time.Second)
		p.MessageExpiry = max(secs, 1)
		p.Set(packet.PropMessageExpiry)
	}
	p.SubscriptionIDs = subIDs
	return p
}
