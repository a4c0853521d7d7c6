// Package testsvc starts throw-away real servers on loopback for tests: Redis (single,
// Sentinel, Cluster), PostgreSQL, MariaDB and OpenLDAP's slapd, each in a temporary
// directory on free 127.0.0.1 ports, with TLS from a throw-away CA (NewPKI) when a test
// asks for it, and stopped when the test ends. The programs come from Debian packages
// (scripts/test-services.sh install); when one is missing the test is skipped, or fails
// when REQUIRE_TEST_SERVICES is set, as it is in CI.
package testsvc
