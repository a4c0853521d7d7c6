package main

import (
	"github.com/spf13/cobra"
)

// newRootCommand builds the command tree. Each subcommand lives in a file named after it.
func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "rampart",
		Short:         "Rampart is a security-first MQTT broker",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand(), newServeCommand(), newBenchCommand(), newPasswdCommand())
	return root
}
