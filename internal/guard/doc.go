// Package guard holds the cheap defences that run before a connecting client costs the broker
// anything expensive: per-user and per-address authentication failure limits with tarpit
// delays and cooldowns (FailureLimiter), and later bans, flapping detection and rates.
//
// Every structure here can be grown by unauthenticated clients, so each is bounded in memory
// and its time-based behaviour reads an injectable Clock.
package guard
