package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rampart-mqtt/rampart/internal/backend/health"
)

// errQueryTimeout is the cause of a query context ended by the query timeout, which tells
// it apart from a caller's context that ended first.
var errQueryTimeout = errors.New("query timeout")

// Health returns the pool's health: whether the server answered the last question, and
// the last failure to reach it.
func (p *Pool) Health() health.Snapshot { return p.health.Snapshot() }

// allow asks the health state whether a question may go to the server now; during the
// back-off after a failure to reach it, the error wraps health.ErrBackoff.
func (p *Pool) allow() error {
	if err := p.health.Allow(); err != nil {
		return fmt.Errorf("postgresql %s: %w", p.target, err)
	}
	return nil
}

// record tells the health state how an allowed question ended: err is nil or the error
// it ended with, ctx the question's context (with the query timeout).
func (p *Pool) record(ctx context.Context, err error) {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		p.health.Success()
	case errors.As(err, &pgErr):
		// The server answered, with an error (SQL, permissions, login refused).
		p.health.Success()
	case ctx.Err() != nil && !errors.Is(context.Cause(ctx), errQueryTimeout):
		// The caller gave up first: nothing learnt about the server.
		p.health.Abandon()
	case unreachable(err) || errors.Is(context.Cause(ctx), errQueryTimeout):
		p.health.Failure(err)
	default:
		// Anything else happened after the server answered (decoding a value, say).
		p.health.Success()
	}
}

// unreachable reports whether err says the server could not be reached or did not
// answer in time: a failed connection attempt (refused, TLS handshake, timeout), a
// broken or timed-out connection.
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, pgconn.ErrConnClosed)
}
