package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rampart-mqtt/rampart/internal/broker"
	"github.com/rampart-mqtt/rampart/internal/clientinfo"
	"github.com/rampart-mqtt/rampart/internal/config"
	"github.com/rampart-mqtt/rampart/internal/guard"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/store/controldb"
)

// connectGuard refuses banned clients before authentication and bans flapping ones: it
// implements broker.Guard. A flap is a connection that ends abnormally or is taken over
// (counted by client id and user name, which authentication vouched for, and by peer
// address), or a refused authentication (counted by peer address only, so that nobody can
// get another's client id or user name banned by failing to log in with it).
type connectGuard struct {
	bans *guard.Bans
	pre  *guard.Flapping // counts peer addresses
	post *guard.Flapping // counts client ids and user names
	log  *slog.Logger
}

var _ broker.Guard = (*connectGuard)(nil)

func buildGuard(ctx context.Context, cfg *config.Config, db *controldb.DB, log *slog.Logger) (*connectGuard, error) {
	b := cfg.Banned
	bans, err := guard.NewBans(ctx, guard.BansConfig{MaxEntries: b.MaxEntries, MaxPatterns: b.MaxPatterns,
		PurgeInterval: b.PurgeInterval.Duration()}, db.Bans(), nil, log)
	if err != nil {
		return nil, fmt.Errorf("banned: %w", err)
	}
	go bans.Run(ctx, b.PurgeInterval.Duration())
	g := &connectGuard{bans: bans, log: log}
	f := cfg.FlappingDetect
	if !f.Enable {
		return g, nil
	}
	var pre, post []guard.BanKind
	for _, k := range f.CountBy {
		switch k {
		case "peerhost":
			pre = append(pre, guard.BanPeerHost)
		case "clientid":
			post = append(post, guard.BanClientID)
		case "username":
			post = append(post, guard.BanUsername)
		}
	}
	mk := func(kinds []guard.BanKind) (*guard.Flapping, error) {
		if len(kinds) == 0 {
			return nil, nil
		}
		return guard.NewFlapping(guard.FlappingConfig{Enable: true, MaxCount: f.MaxCount, WindowTime: f.WindowTime.Duration(),
			BanTime: f.BanTime.Duration(), MaxEntries: f.MaxEntries, CountBy: kinds}, bans, nil, log)
	}
	if g.pre, err = mk(pre); err != nil {
		return nil, fmt.Errorf("flapping_detect: %w", err)
	}
	if g.post, err = mk(post); err != nil {
		return nil, fmt.Errorf("flapping_detect: %w", err)
	}
	return g, nil
}

// disconnectOnBan makes every new ban disconnect the live clients it matches (MQTT 5:
// DISCONNECT 0x98 administrative action; 0x8A is a CONNACK-only code).
func (g *connectGuard) disconnectOnBan(srv *broker.Server) {
	g.bans.OnAdd(func(b guard.Ban) {
		srv.DisconnectClients(func(info *clientinfo.Info) bool { return g.bans.MatchesLive(b, info) }, packet.AdministrativeAction)
	})
}

// Check refuses a banned client, and a peer address banned for flapping.
func (g *connectGuard) Check(_ context.Context, info *clientinfo.Info) (string, bool) {
	if b, ok := g.bans.Match(info); ok {
		return "banned (" + string(b.Kind) + "): " + b.Reason, true
	}
	if g.pre != nil && g.pre.Banned(info) {
		return "banned (peerhost): flapping", true
	}
	return "", false
}

// Connected refuses an authenticated client whose client id or user name is banned for
// flapping. The ban list has refused it already, unless the list would not take the ban.
func (g *connectGuard) Connected(_ context.Context, info *clientinfo.Info) bool {
	return g.post != nil && g.post.Banned(info)
}

// Ended counts the flaps: abnormal ends and takeovers by every identity, refusals by peer
// address. Clean ends, and ends the server chose, are not flaps.
func (g *connectGuard) Ended(ctx context.Context, info *clientinfo.Info, how broker.End) {
	switch how {
	case broker.EndAbnormal, broker.EndTakenOver:
		if g.post != nil {
			g.post.Count(ctx, info)
		}
		fallthrough
	case broker.EndRefused:
		if g.pre != nil {
			g.pre.Count(ctx, info)
		}
	}
}
