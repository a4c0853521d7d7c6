package config

import (
	"fmt"
	"time"
)

// Banned configures the ban list (clients refused at CONNECT with 0x8A).
type Banned struct {
	MaxEntries    int      `yaml:"max_entries"`
	MaxPatterns   int      `yaml:"max_patterns"`
	PurgeInterval Duration `yaml:"purge_interval"`
}

// FlappingDetect bans clients that connect too often.
type FlappingDetect struct {
	Enable     bool     `yaml:"enable"`
	MaxCount   int      `yaml:"max_count"`
	WindowTime Duration `yaml:"window_time"`
	BanTime    Duration `yaml:"ban_time"`
	MaxEntries int      `yaml:"max_entries"`
	// CountBy lists what connects are counted by: clientid and username (counted after
	// authentication, so nobody can get another's identity banned), peerhost (counted
	// before it).
	CountBy []string `yaml:"count_by"`
}

func defaultBanned() Banned {
	return Banned{MaxEntries: 100000, MaxPatterns: 100, PurgeInterval: Duration(time.Minute)}
}

func defaultFlapping() FlappingDetect {
	return FlappingDetect{Enable: true, MaxCount: 15, WindowTime: Duration(time.Minute), BanTime: Duration(5 * time.Minute),
		MaxEntries: 100000, CountBy: []string{"clientid"}}
}

func (c *Config) checkGuard(ch *checker) {
	b := c.Banned
	ch.intRange("banned.max_entries", b.MaxEntries, 1, 10000000)
	ch.intRange("banned.max_patterns", b.MaxPatterns, 0, 10000)
	ch.durRange("banned.purge_interval", b.PurgeInterval, time.Second, 24*time.Hour)
	f := c.FlappingDetect
	if !f.Enable {
		return
	}
	ch.intRange("flapping_detect.max_count", f.MaxCount, 1, 1000000)
	ch.durRange("flapping_detect.window_time", f.WindowTime, time.Second, 24*time.Hour)
	ch.durRange("flapping_detect.ban_time", f.BanTime, time.Second, 365*24*time.Hour)
	ch.intRange("flapping_detect.max_entries", f.MaxEntries, 100, 10000000)
	if len(f.CountBy) == 0 {
		ch.add("flapping_detect.count_by", "name at least one of clientid, username, peerhost")
	}
	for i, k := range f.CountBy {
		ch.enum(fmt.Sprintf("flapping_detect.count_by[%d]", i), checkEnum(k, "clientid", "username", "peerhost"))
	}
}
