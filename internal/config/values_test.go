package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"1048576", 1048576},
		{"512B", 512},
		{"512b", 512},
		{"64KB", 64 * 1024},
		{"64kb", 64 * 1024},
		{"1MB", 1 << 20},
		{"1mb", 1 << 20},
		{"1Mb", 1 << 20},
		{"1GB", 1 << 30},
		{"256MB", 256 << 20},
		{"1 MB", 1 << 20},
		{"10_000", 10000},
		{"8589934591GB", 8589934591 << 30},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tc := range good {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, why string }{
		{"", "missing number"},
		{"MB", "missing number"},
		{"-1", "negative"},
		{"-1MB", "negative"},
		{"+1MB", "sign"},
		{"1.5MB", "whole number"},
		{"0.5", "whole number"},
		{"1TB", "unknown unit"},
		{"1KiB", "unknown unit"},
		{"1M", "unknown unit"},
		{"1 M B", "unknown unit"},
		{"0x10", "unknown unit"},
		{"010", "leading zero"},
		{"8589934592GB", "too large"},
		{"9223372036854775808", "too large"},
		{"lots", "missing number"},
	}
	for _, tc := range bad {
		_, err := ParseSize(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "\""+tc.in+"\"") {
			t.Errorf("ParseSize(%q) error = %v; want one naming the value and %q", tc.in, err, tc.why)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{{0, "0B"}, {1, "1B"}, {1500, "1500B"}, {KB, "1KB"}, {1536, "1536B"}, {MB, "1MB"}, {64 * MB, "64MB"}, {GB, "1GB"}, {3 * GB, "3GB"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q; want %q", tc.in, got, tc.want)
		}
		back, err := ParseSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"10s", 10 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"2h", 2 * time.Hour},
		{"1.5h", 90 * time.Minute},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"0d", 0},
		{"106751d", 106751 * 24 * time.Hour},
	}
	for _, tc := range good {
		got, err := ParseDuration(tc.in)
		if err != nil || got.Duration() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.Duration(), err, tc.want)
		}
	}
	bad := []struct{ in, why string }{
		{"", "empty"},
		{"-1s", "negative"},
		{"-7d", "negative"},
		{"+5s", "sign"},
		{"10", "missing unit"},
		{"1h10", "missing unit"},
		{"soon", "malformed"},
		{"5x", "malformed"},
		{"1.5d", "days"},
		{"12h1d", "days"},
		{"1dd", "malformed"},
		{"1d-5s", "malformed"},
		{"106752d", "too large"},
		{"106751d23h59m59s", "too large"},
		{"9999999999999999h", "malformed"},
	}
	for _, tc := range bad {
		_, err := ParseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "\""+tc.in+"\"") {
			t.Errorf("ParseDuration(%q) error = %v; want one naming the value and %q", tc.in, err, tc.why)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {15 * time.Second, "15s"}, {90 * time.Second, "1m30s"}, {2 * time.Hour, "2h"},
		{300 * time.Second, "5m"}, {7 * 24 * time.Hour, "168h"}, {250 * time.Millisecond, "250ms"},
		{time.Hour + time.Second, "1h1s"},
	} {
		if got := Duration(tc.in).String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q; want %q", tc.in, got, tc.want)
		}
		back, err := ParseDuration(tc.want)
		if err != nil || back.Duration() != tc.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.want, back, err, tc.in)
		}
	}
}

func TestParseLimit(t *testing.T) {
	good := []struct {
		in   string
		want Limit
	}{
		{"1", 1}, {"100000", 100000}, {"infinity", Infinity}, {"Infinity", Infinity}, {"0", 0}, {"1_000", 1000},
	}
	for _, tc := range good {
		got, err := ParseLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-1", "inf", "unlimited", "1.5", "1e6", "99999999999999999999"} {
		if _, err := ParseLimit(in); err == nil || !strings.Contains(err.Error(), "\""+in+"\"") {
			t.Errorf("ParseLimit(%q) error = %v; want one naming the value", in, err)
		}
	}
}

func TestLimitMethods(t *testing.T) {
	if !Infinity.Unlimited() || Limit(5).Unlimited() || Limit(0).Unlimited() {
		t.Error("Unlimited is true only for Infinity")
	}
	if !Infinity.Allows(math.MaxInt) || !Limit(5).Allows(5) || Limit(5).Allows(6) || Limit(0).Allows(1) {
		t.Error("Allows")
	}
	if Infinity.String() != "infinity" || Limit(7).String() != "7" {
		t.Errorf("String: %q %q", Infinity.String(), Limit(7).String())
	}
}

func TestEnums(t *testing.T) {
	var d Durability
	if err := d.UnmarshalText([]byte("none")); err != nil || d != DurabilityNone {
		t.Errorf("durability none: %v %q", err, d)
	}
	for _, bad := range []string{"", "Sync", "fsync", "async"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil || !strings.Contains(err.Error(), "sync, none") {
			t.Errorf("durability %q: %v", bad, err)
		}
	}
	var l LogLevel
	if err := l.UnmarshalText([]byte("warning")); err == nil {
		t.Error("log level warning accepted")
	}
	var f LogFormat
	if err := f.UnmarshalText([]byte("json")); err != nil || f != LogJSON {
		t.Errorf("log format json: %v", err)
	}
	var s SharedStrategy
	if err := s.UnmarshalText([]byte("random")); err != nil || s != SharedRandom {
		t.Errorf("strategy random: %v", err)
	}
	if err := s.UnmarshalText([]byte("hash_clientid")); err == nil {
		t.Error("strategy hash_clientid accepted")
	}
}
