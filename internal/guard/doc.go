// Package guard holds the cheap defences that run before a connecting client costs the broker
// anything expensive: the ban list (Bans: exact client ids and usernames, address blocks and
// patterns, persisted in the control database and matched from memory), flapping detection
// (Flapping), per-user and per-address authentication failure limits with tarpit delays and
// cooldowns (FailureLimiter), and later rates.
//
// Every structure here can be grown by unauthenticated clients, so each is bounded in memory
// and its time-based behaviour reads an injectable Clock.
package guard
