package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-mqtt/rampart/internal/bench"
	"github.com/rampart-mqtt/rampart/internal/mqtt/packet"
	"github.com/rampart-mqtt/rampart/internal/secret"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an MQTT broker (pub, sub, conn)",
		Long: "Load-test an MQTT broker with many clients for a bounded time.\n" +
			"Topic, client id, user name and password templates may use %i, the client index.\n" +
			"--addr is host:port (MQTT over TCP, TLS with --tls) or a ws:// or wss:// URL.\n" +
			"Secrets (--password, --jwt-secret) are given as file:/path or env:NAME, never inline.\n" +
			"A run that ends before its --count target exits with a non-zero status.",
	}
	cmd.AddCommand(
		newBenchModeCommand(bench.ModePub, "Publish messages at a rate"),
		newBenchModeCommand(bench.ModeSub, "Subscribe and measure throughput, end-to-end latency, loss and duplicates"),
		newBenchModeCommand(bench.ModeConn, "Open connections and hold them"),
	)
	return cmd
}

// benchSecret reads a secret flag given as file:/path or env:NAME. A secret written on the
// command line is refused: every user of the machine can read it (ps, /proc/PID/cmdline)
// and it stays in shell history.
func benchSecret(flag, ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	if !secret.IsRef(ref) {
		return "", fmt.Errorf("--%s: give it as file:/path or env:NAME; a secret on the command line is refused (other users see it in the process list, and it stays in shell history)", flag)
	}
	v, err := secret.Read(ref)
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	return string(v), nil
}

// newBenchModeCommand builds one of bench pub, sub and conn, each with only the flags it
// uses.
func newBenchModeCommand(mode bench.Mode, short string) *cobra.Command {
	o := bench.Defaults()
	o.ClientID = "bench-" + string(mode) + "-%i"
	var (
		version                          int
		qos                              int
		sourceAddrs                      string
		passwordRef, jwtSecretRef        string
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
			var err error
			if o.Password, err = benchSecret("password", passwordRef); err != nil {
				return err
			}
			if o.JWTSecret, err = benchSecret("jwt-secret", jwtSecretRef); err != nil {
				return err
			}
			addrs, err := bench.ParseSourceAddrs(sourceAddrs)
			if err != nil {
				return err
			}
			o.SourceAddrs = addrs
			if sname == "" {
				sname = bench.AddrHost(o.Addr)
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
	f.StringVarP(&o.Addr, "addr", "a", o.Addr, "broker address: host:port, or ws://host:port/path or wss://host:port/path for its WebSocket listener")
	f.IntVarP(&version, "version", "V", 5, "MQTT version: 3 or 4 (3.1.1), 5")
	f.IntVarP(&o.Clients, "clients", "c", o.Clients, "number of clients")
	f.IntVar(&o.StartAt, "start-index", 0, "index of the first client (%i)")
	f.Float64VarP(&o.ConnRate, "conn-rate", "R", 0, "new connections per second (0 = as fast as possible)")
	f.DurationVarP(&o.Duration, "duration", "d", o.Duration, "how long to run once connected")
	f.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "bound of one connection handshake")
	f.StringVarP(&o.ClientID, "client-id", "i", o.ClientID, "client id template")
	f.StringVarP(&o.Username, "username", "u", "", "user name template")
	f.StringVarP(&passwordRef, "password", "P", "", "password template, as file:/path or env:NAME (never inline)")
	f.StringVar(&jwtSecretRef, "jwt-secret", "", "send an HS256 JWT signed with this secret as each client's password; file:/path or env:NAME (never inline)")
	f.DurationVar(&o.JWTTTL, "jwt-ttl", o.JWTTTL, "lifetime of the JWTs")
	f.Uint16VarP(&o.KeepAlive, "keepalive", "k", o.KeepAlive, "keep alive, seconds")
	f.BoolVar(&o.CleanStart, "clean", true, "clean start / clean session")
	f.DurationVar(&expiry, "session-expiry", 0, "MQTT 5 session expiry interval")
	switch mode {
	case bench.ModePub:
		f.StringVarP(&o.Topic, "topic", "t", o.Topic, "topic template")
		f.IntVarP(&qos, "qos", "q", 0, "QoS 0, 1 or 2")
		f.IntVarP(&o.Size, "size", "s", o.Size, "payload bytes (at least 24: send time, sequence number, publisher)")
		f.Float64VarP(&o.Rate, "rate", "r", 0, "messages per second per publisher (0 = as fast as the window allows)")
		f.Int64VarP(&o.Count, "count", "n", 0, "messages per publisher; fewer by the end of --duration is a failure (0 = run for --duration)")
		f.IntVar(&o.Inflight, "inflight", o.Inflight, "unacknowledged QoS 1/2 messages per publisher")
		f.BoolVar(&o.Retain, "retain", false, "publish retained messages")
	case bench.ModeSub:
		f.StringVarP(&o.Topic, "topic", "t", o.Topic, "topic filter template")
		f.IntVarP(&qos, "qos", "q", 0, "QoS 0, 1 or 2 of the subscription")
		f.Int64VarP(&o.Count, "count", "n", 0, "stop once this many messages arrived in all; fewer by the end of --duration is a failure (0 = run for --duration)")
	}
	f.StringVar(&sourceAddrs, "source-addrs", "", "local addresses to spread clients over: 127.0.0.1-127.0.0.16 or a list")
	f.BoolVar(&tlsOn, "tls", false, "connect with TLS (implied by wss://)")
	f.StringVar(&caFile, "cacert", "", "CA certificate (PEM) that verifies the broker")
	f.StringVar(&certFile, "cert", "", "client certificate (PEM) for mutual TLS")
	f.StringVar(&keyFile, "key", "", "client private key (PEM)")
	f.StringVar(&sname, "server-name", "", "TLS server name (default: the host of --addr)")
	f.DurationVar(&o.Progress, "progress", o.Progress, "interval of the progress line on stderr (0 = none)")
	f.BoolVar(&jsonOut, "json", false, "print the summary as JSON")
	return cmd
}
