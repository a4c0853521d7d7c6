package main

import (
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-mqtt/rampart/internal/bench"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an MQTT broker (pub, sub, conn)",
		Long: "Load-test an MQTT broker with many clients for a bounded time.\n" +
			"Topic, client id, user name and password templates may use %i, the client index.",
	}
	cmd.AddCommand(
		newBenchModeCommand(bench.ModePub, "Publish messages at a rate"),
		newBenchModeCommand(bench.ModeSub, "Subscribe and measure throughput and end-to-end latency"),
		newBenchModeCommand(bench.ModeConn, "Open connections and hold them"),
	)
	return cmd
}

func newBenchModeCommand(mode bench.Mode, short string) *cobra.Command {
	o := bench.Defaults()
	o.ClientID = "bench-" + string(mode) + "-%i"
	var (
		version                          int
		qos                              int
		sourceAddrs                      string
		tlsOn, jsonOut                   bool
		caFile, certFile, keyFile, sname string
		expiry                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   string(mode),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Version = packet.Version(version)
			if version == 3 {
				o.Version = packet.V311
			}
			if qos < 0 || qos > 2 {
				return fmt.Errorf("--qos %d: must be 0, 1 or 2", qos)
			}
			o.QoS = byte(qos)
			o.SessionExpiry = uint32(expiry / time.Second)
			addrs, err := bench.ParseSourceAddrs(sourceAddrs)
			if err != nil {
				return err
			}
			o.SourceAddrs = addrs
			if sname == "" {
				sname, _, _ = net.SplitHostPort(o.Addr)
			}
			if tlsOn || caFile != "" || certFile != "" {
				if o.TLS, err = bench.TLSFiles(caFile, certFile, keyFile, sname); err != nil {
					return err
				}
			}
			o.Ready = func(n int) {
				fmt.Fprintf(cmd.ErrOrStderr(), "ready: %d clients connected\n", n)
			}
			sum, runErr := bench.Run(cmd.Context(), mode, o, cmd.ErrOrStderr())
			if sum != nil {
				if jsonOut {
					enc := json.NewEncoder(cmd.OutOrStdout())
					if err := enc.Encode(sum); err != nil {
						return err
					}
				} else {
					sum.WriteText(cmd.OutOrStdout())
				}
			}
			return runErr
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Addr, "addr", "a", o.Addr, "broker address host:port")
	f.IntVarP(&version, "version", "V", 5, "MQTT version: 3 or 4 (3.1.1), 5")
	f.IntVarP(&o.Clients, "clients", "c", o.Clients, "number of clients")
	f.IntVar(&o.StartAt, "start-index", 0, "index of the first client (%i)")
	f.Float64VarP(&o.ConnRate, "conn-rate", "R", 0, "new connections per second (0 = as fast as possible)")
	f.DurationVarP(&o.Duration, "duration", "d", o.Duration, "how long to run once connected")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "bound of one connection handshake")
	f.StringVarP(&o.ClientID, "client-id", "i", o.ClientID, "client id template")
	f.StringVarP(&o.Username, "username", "u", "", "user name template")
	f.StringVarP(&o.Password, "password", "P", "", "password template")
	f.StringVar(&o.JWTSecret, "jwt-secret", "", "send an HS256 JWT signed with this secret as each client's password")
	f.DurationVar(&o.JWTTTL, "jwt-ttl", o.JWTTTL, "lifetime of the JWTs")
	f.Uint16VarP(&o.KeepAlive, "keepalive", "k", o.KeepAlive, "keep alive, seconds")
	f.BoolVar(&o.CleanStart, "clean", true, "clean start / clean session")
	f.DurationVar(&expiry, "session-expiry", 0, "MQTT 5 session expiry interval")
	f.StringVarP(&o.Topic, "topic", "t", o.Topic, "topic (pub) or filter (sub) template")
	f.IntVarP(&qos, "qos", "q", 0, "QoS 0, 1 or 2")
	f.IntVarP(&o.Size, "size", "s", o.Size, "payload bytes (at least 16)")
	f.Float64VarP(&o.Rate, "rate", "r", 0, "messages per second per publisher (0 = as fast as the window allows)")
	f.Int64VarP(&o.Count, "count", "n", 0, "pub: messages per publisher; sub: stop once this many arrived in total (0 = run for --duration)")
	f.IntVar(&o.Inflight, "inflight", o.Inflight, "unacknowledged QoS 1/2 messages per publisher")
	f.BoolVar(&o.Retain, "retain", false, "publish retained messages")
	f.StringVar(&sourceAddrs, "source-addrs", "", "local addresses to spread clients over: 127.0.0.1-127.0.0.16 or a list")
	f.BoolVar(&tlsOn, "tls", false, "connect with TLS")
	f.StringVar(&caFile, "cacert", "", "CA certificate (PEM) that verifies the broker")
	f.StringVar(&certFile, "cert", "", "client certificate (PEM) for mutual TLS")
	f.StringVar(&keyFile, "key", "", "client private key (PEM)")
	f.StringVar(&sname, "server-name", "", "TLS server name (default: the host of --addr)")
	f.DurationVar(&o.Progress, "progress", o.Progress, "interval of the progress line on stderr (0 = none)")
	f.BoolVar(&jsonOut, "json", false, "print the summary as JSON")
	return cmd
}
