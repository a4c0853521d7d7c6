//go:build !linux

package broker

import (
	"errors"
	"log/slog"
)

// parker is only implemented on Linux; elsewhere every connection keeps its goroutine.
type parker struct{}

func newParker(*slog.Logger) (*parker, error) { return nil, errors.New("parking needs Linux") }

func (p *parker) park(*conn) bool   { return false }
func (p *parker) unpark(*conn) bool { return false }
func (p *parker) stop(*conn) bool   { return false }
func (p *parker) close()            {}
func (p *parker) count() int        { return 0 }
