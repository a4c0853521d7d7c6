// Package bench is a load generator for MQTT brokers, in the spirit of emqtt_bench: many
// clients that connect, publish or subscribe at a set rate for a bounded time, and a report
// of throughput, connect rate, end-to-end latency percentiles and errors by reason.
//
// It speaks MQTT through the project's own codec over plain TCP or TLS, so the load tool
// costs little CPU next to the broker it measures. Every run is bounded by a duration and,
// optionally, a message count, and stops by itself.
package bench
