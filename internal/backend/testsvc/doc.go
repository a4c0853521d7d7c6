// Package testsvc starts throw-away real servers (Redis, PostgreSQL) on loopback for tests.
package testsvc
