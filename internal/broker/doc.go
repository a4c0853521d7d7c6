// Package broker is the MQTT server: the connection state machine, sessions and their
// queues, the router, retained messages, will messages and $SYS topics.
//
// One goroutine reads each connection. Outgoing packets are encoded straight into the
// connection's pending buffer by whichever goroutine produces them (a publisher's reader, a
// timer), and a writer goroutine exists only while that buffer is not empty. A subscriber
// that stops reading is bounded by its pending bytes and a write deadline, and then
// disconnected; it never blocks publishers.
//
// The seams for security controls sit where the design puts them: Authenticator at CONNECT
// (after the cheap checks), Authorizer before routing a PUBLISH and before a SUBSCRIBE is
// granted. Until the authentication and authorization chains exist, the defaults allow
// everything that the listener policy allows.
package broker
